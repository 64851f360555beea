if [ "$1" -eq 0 ] && command -v systemctl >/dev/null 2>&1; then
  systemctl --no-reload disable --now otpgate.service >/dev/null 2>&1 || :
fi
exit 0
