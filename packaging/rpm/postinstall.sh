. /usr/share/otpgate/packaging/common-postinst.sh
otpgate_setup
if command -v systemctl >/dev/null 2>&1; then
  systemctl daemon-reload >/dev/null 2>&1 || :
  if [ "$1" -eq 1 ]; then
    systemctl enable otpgate.service >/dev/null 2>&1 || :
    echo "otpgate: edit /etc/otpgate/otpgate.toml, check it with"
    echo "  sudo -u otpgate otpgate check-config"
    echo "then start the service: systemctl start otpgate (it is enabled, not started)."
  else
    systemctl try-restart otpgate.service >/dev/null 2>&1 || :
  fi
fi
exit 0
