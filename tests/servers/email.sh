#!/usr/bin/env bash
# Email: Dovecot IMAP on 127.0.0.1:1143 (plain/STARTTLS) and :1993 (TLS) + aiosmtpd SMTP sinks on
# 127.0.0.1:1025 (plain/STARTTLS) and :1465 (TLS), with a self-signed certificate for localhost.
# Usage: email.sh install | start | stop [--wipe] | deliver FILE [FROM] [MAILBOX] | reset-uids [MAILBOX]
#   deliver    = put an RFC822 file into INBOX (or MAILBOX) via dovecot-lda (what an MTA does)
#   reset-uids = drop the mailbox's UID list and indexes: Dovecot renumbers it with a NEW UIDVALIDITY
# Must run as root (dovecot master). Test login: testuser / testpass
# Adapted from ../shared/e2e/email.sh (tested with Dovecot 2.3.19.1).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
E2E_DIR=${E2E_DIR:-$HERE/../../.e2e}
D=$E2E_DIR/dovecot                # config, runtime, logs
MAILROOT=$E2E_DIR/mail            # maildirs (owned by the 'mail' system user, uid 8)
OUTBOX=$E2E_DIR/smtp-outbox       # aiosmtpd writes every received message here (Maildir)
VENV=$E2E_DIR/email-venv
IMAP_PORT=${IMAP_PORT:-1143}     # plain + STARTTLS
IMAPS_PORT=${IMAPS_PORT:-1993}   # implicit TLS
SMTP_PORT=${SMTP_PORT:-1025}     # plain + STARTTLS
SMTPS_PORT=${SMTPS_PORT:-1465}   # implicit TLS
TLS=$E2E_DIR/dovecot/tls         # self-signed certificate for "localhost" (cert.pem is its own CA)
MUID=$(id -u mail); MGID=$(id -g mail)

install() {
  if ! command -v dovecot >/dev/null || [ ! -x /usr/lib/dovecot/imap ]; then
    apt-get update -qq
    # the package's own system service is not started in containers (policy-rc.d); we run our own instance
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dovecot-imapd >/dev/null
  fi
  if ! command -v openssl >/dev/null; then  # for the self-signed test certificate
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null
  fi
  if [ ! -x "$VENV/bin/aiosmtpd" ]; then
    mkdir -p "$E2E_DIR"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check aiosmtpd
  fi
}

make_cert() {
  [ -f "$TLS/cert.pem" ] && return 0
  mkdir -p "$TLS"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=localhost" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$TLS/key.pem" -out "$TLS/cert.pem" >/dev/null 2>&1
  chmod 600 "$TLS/key.pem"
}

configure() {
  make_cert
  mkdir -p "$D/run" "$D/state" "$MAILROOT/testuser" "$OUTBOX"/{tmp,new,cur}  # Maildir layout must exist for aiosmtpd Mailbox
  chown -R "$MUID:$MGID" "$MAILROOT"
  # passwd-file: user:password:uid:gid::home
  echo "testuser:{PLAIN}testpass:$MUID:$MGID::$MAILROOT/testuser" > "$D/users"
  chmod 640 "$D/users"; chown root:dovecot "$D/users"
  cat > "$D/dovecot.conf" <<CONF
# stand-alone instance: nothing from /etc/dovecot is read
base_dir = $D/run
state_dir = $D/state
instance_name = e2e-dovecot
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <$TLS/cert.pem
ssl_key = <$TLS/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
# tests try wrong passwords on purpose: no 2 s penalty
auth_failure_delay = 0
log_path = $D/dovecot.log
info_log_path = $D/dovecot.log
first_valid_uid = $MUID
first_valid_gid = $MGID
mail_location = maildir:~/Maildir
namespace inbox {
  inbox = yes
  separator = /
  mailbox Sent {
    special_use = \Sent
    auto = subscribe
  }
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN $D/users
}
userdb {
  driver = passwd-file
  args = $D/users
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $IMAP_PORT
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $IMAPS_PORT
    ssl = yes
  }
}
# dovecot-lda is used by 'deliver'
protocol lda {
  postmaster_address = postmaster@localhost
}
# deliver -m BOX creates BOX instead of falling back to INBOX (tests use a mailbox each)
lda_mailbox_autocreate = yes
CONF
  doveconf -c "$D/dovecot.conf" -n >/dev/null   # validate
}

wait_port() { # port
  for i in $(seq 1 100); do
    (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

start() {
  install
  configure
  if [ -f "$D/run/master.pid" ] && kill -0 "$(cat "$D/run/master.pid")" 2>/dev/null; then
    echo "dovecot already running"
  else
    # daemonizes (pid in $D/run/master.pid). The master keeps the caller's stderr open forever,
    # so redirect it - otherwise "email.sh start | tail" or subprocess.run(capture_output=True) hangs.
    dovecot -c "$D/dovecot.conf" </dev/null >/dev/null 2>>"$D/dovecot.stderr"
    wait_port "$IMAP_PORT" || { echo "dovecot not listening; see $D/dovecot.log"; exit 1; }
  fi
  if [ -f "$D/smtpd.pid" ] && kill -0 "$(cat "$D/smtpd.pid")" 2>/dev/null; then
    echo "SMTP sink already running"
  else
    # aiosmtpd storing into the Maildir $OUTBOX (see smtp_sink.py: STARTTLS, SMTPS, AUTH)
    nohup "$VENV/bin/python" "$HERE/smtp_sink.py" --maildir "$OUTBOX" --port "$SMTP_PORT" \
        --smtps-port "$SMTPS_PORT" --cert "$TLS/cert.pem" --key "$TLS/key.pem" \
        >"$D/smtpd.log" 2>&1 &
    echo $! > "$D/smtpd.pid"
    wait_port "$SMTP_PORT" && wait_port "$SMTPS_PORT" \
      || { echo "SMTP sink not listening; see $D/smtpd.log"; cat "$D/smtpd.log"; exit 1; }
  fi
  echo "IMAP=127.0.0.1:$IMAP_PORT (plain or STARTTLS) IMAPS=127.0.0.1:$IMAPS_PORT user=testuser pass=testpass"
  echo "SMTP=127.0.0.1:$SMTP_PORT (plain, or STARTTLS + AUTH testuser/testpass) SMTPS=127.0.0.1:$SMTPS_PORT, captured into Maildir $OUTBOX"
  echo "TLS_CA=$TLS/cert.pem (self-signed for localhost)"
  echo "DOVECOT_PID=$(cat "$D/run/master.pid") SMTPD_PID=$(cat "$D/smtpd.pid")"
}

deliver() { # file with an RFC822 message [envelope sender] [mailbox]
  local box=()
  [ -n "${3:-}" ] && box=(-m "$3")
  /usr/lib/dovecot/dovecot-lda -c "$D/dovecot.conf" -d testuser -f "${2:-customer@example.com}" "${box[@]}" < "$1"
}

reset_uids() { # [mailbox]: simulate a server that lost its UID state (restore from backup, migration)
  local box=${1:-INBOX} dir
  if [ "$box" = INBOX ]; then dir=$MAILROOT/testuser/Maildir; else dir=$MAILROOT/testuser/Maildir/.$box; fi
  [ -d "$dir" ] || { echo "no maildir $dir" >&2; exit 1; }
  # kick any open IMAP session so no process keeps the old index in memory
  doveadm -c "$D/dovecot.conf" kick testuser >/dev/null 2>&1 || true
  rm -f "$dir"/dovecot-uidlist "$dir"/dovecot.index*
  echo "reset UIDs of $box"
}

stop() {
  if [ -f "$D/smtpd.pid" ]; then
    pid=$(cat "$D/smtpd.pid"); kill "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$D/smtpd.pid"; echo "stopped SMTP sink pid $pid"
  fi
  if [ -f "$D/run/master.pid" ]; then
    pid=$(cat "$D/run/master.pid"); kill "$pid" 2>/dev/null || true   # master takes its children down
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    echo "stopped dovecot pid $pid"
  fi
  [ "${1:-}" = "--wipe" ] && rm -rf "$D" "$MAILROOT" "$OUTBOX" && echo "wiped"
  return 0
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  reset-uids) shift; reset_uids "${1:-}" ;;
  stop) shift; stop "${1:-}" ;;
  deliver) shift; deliver "$@" ;;
  *) echo "usage: $0 install|start|stop [--wipe]|deliver FILE [FROM] [MAILBOX]|reset-uids [MAILBOX]"; exit 2 ;;
esac
