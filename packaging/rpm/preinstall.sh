getent group otpgate >/dev/null || groupadd -r otpgate
getent passwd otpgate >/dev/null || useradd -r -g otpgate -d /var/lib/otpgate -M \
  -s /sbin/nologin -c "otpgate daemon" otpgate
exit 0
