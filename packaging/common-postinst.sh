# Shared by the deb postinst and the rpm %post (sourced with `.`): the state and
# configuration owned as the service needs them, a random secret for the local RADIUS client,
# and on first install the key file and the database, made by the service user.
otpgate_setup() {
  install -d -o otpgate -g otpgate -m 0750 /var/lib/otpgate
  chown root:otpgate /etc/otpgate
  chmod 0750 /etc/otpgate
  for f in /etc/otpgate/otpgate.toml /etc/otpgate/users.toml; do
    if [ -e "$f" ]; then chown root:otpgate "$f"; chmod 0640 "$f"; fi
  done
  if [ ! -e /etc/otpgate/localhost.secret ]; then
    (umask 0027; head -c 18 /dev/urandom | base64 > /etc/otpgate/localhost.secret)
    chown root:otpgate /etc/otpgate/localhost.secret
  fi
  if [ ! -e /var/lib/otpgate/secret.key ]; then
    runuser -u otpgate -- /usr/bin/otpgate -c /etc/otpgate/otpgate.toml init >/dev/null
  fi
}
