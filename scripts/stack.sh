#!/usr/bin/env bash
# The whole creditdesk stack on one machine, in a private state directory:
# a MariaDB server with its own datadir, the migrations and demo data, the
# Stripe emulator, every route family's FastCGI responders (spawn-fcgi +
# multiwatch, kept running by scripts/respawn.sh) and nginx on 127.0.0.1.  Nothing touches the system MariaDB or
# nginx; every process is started in the background with its PID recorded
# and is stopped by that PID only.
#
# Usage: scripts/stack.sh start|stop|restart|status|env|state-dir|start-db|stop-db|restart-db
#        scripts/stack.sh setup-db|start-app|stop-app|start-emu|stop-emu
#
#   start       start whatever is not running (safe to repeat); prints the URL
#   stop        stop everything this state dir started (safe when stopped)
#   restart     stop, then start
#   status      what is running; exit 3 if something that could run does not
#   env         print the shell-sourceable environment for tests and tools
#   state-dir   print the state directory in use (see state_dir below)
#   nginx-conf  print the nginx.conf this environment renders (not written)
#   start-db / stop-db / restart-db   only the MariaDB server (tests use these
#               to take the database away mid-test)
#   setup-db    the database, its accounts, migrations and demo rows
#   start-app / stop-app   only the responders and nginx
#   start-emu / stop-emu   only the Stripe emulator
#   (scripts/cluster.sh runs one machine of a cluster with these parts)
#
# Settings (environment): CD_STATE_DIR (default $repo/.state), CD_HTTP_PORT
# (8080), CD_DB_PORT (3307), CD_EMU_PORT (12111), CD_CHILDREN (children per
# family, 2), CD_NGINX_WORKERS (nginx worker processes, 2; with CD_CHILDREN it
# sizes the FastCGI keep-alive, see upstream_keepalive), CD_EMU_RETRY (emulator webhook retry schedule, 1,2,4,8,16,32).
# CD_DB_TIMEOUT, CD_BODY_LIMIT, CD_STRIPE_TIMEOUT_MS, CD_WEBHOOK_TOLERANCE,
# CD_SESSION_IDLE and ASAN_OPTIONS are passed on to the responders when set;
# CD_CHAT_PUBLISH (the chat push publishers, default this nginx's
# run/publish/chat-publish.sock) to the sessions and auth families.
# nginx's per-address limits, RATE:BURST (requests per second, and how many
# more at once): CD_LIMIT_SIGNIN (20:100), CD_LIMIT_REGISTER (10:50),
# CD_LIMIT_CHECKOUT (50:300); generous enough for the tests and benches,
# which sign in many users from 127.0.0.1.  For one machine of a cluster:
# CD_LISTEN (what nginx listens on, default 127.0.0.1:$CD_HTTP_PORT; may be
# unix:/path), CD_DB_BIND (mariadbd's bind address, 127.0.0.1), CD_DB_OPTS
# (more mariadbd options, e.g. the wsrep settings), CD_DB_USER_HOSTS (hosts
# the accounts may connect from, "localhost 127.0.0.1") and CD_APP_DB_HOST
# (the servers the responders use, comma-separated, over TCP instead of the
# local socket).
#
# Layout of the state directory:
#   secrets             generated passwords and keys (mode 600)
#   env                 exports for tests (mode 600)
#   root.cnf admin.cnf app.cnf   mariadb client option files (mode 600)
#   mysql/              the datadir (owned by mysql when run as root)
#   mysqld/             server socket and pid file (mysqld.sock is linked
#                       from the state dir's top level too)
#   app/                the installed responders (bin/) and templates/,
#                       readable by the service users
#   run/                responder sockets and every recorded PID
#   log/                one log per process; responders' stderr included
#   nginx.conf nginx/   rendered config, nginx pid and temp files
#   emulator.sqlite3    the Stripe emulator's saved state
set -euo pipefail
umask 022

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HTTP_PORT=${CD_HTTP_PORT:-8080}
DB_PORT=${CD_DB_PORT:-3307}
EMU_PORT=${CD_EMU_PORT:-12111}
CHILDREN=${CD_CHILDREN:-2}
NGINX_WORKERS=${CD_NGINX_WORKERS:-2}
EMU_RETRY=${CD_EMU_RETRY:-1,2,4,8,16,32}
LIMIT_SIGNIN=${CD_LIMIT_SIGNIN:-20:100}
LIMIT_REGISTER=${CD_LIMIT_REGISTER:-10:50}
LIMIT_CHECKOUT=${CD_LIMIT_CHECKOUT:-50:300}
LISTEN=${CD_LISTEN:-127.0.0.1:$HTTP_PORT}
DB_BIND=${CD_DB_BIND:-127.0.0.1}
read -r -a DB_EXTRA_OPTS <<<"${CD_DB_OPTS:-}"
read -r -a DB_USER_HOSTS <<<"${CD_DB_USER_HOSTS:-localhost 127.0.0.1}"
APP_DB_HOST=${CD_APP_DB_HOST:-}
DB_NAME=creditdesk
APP_DB_USER=creditdesk
ADMIN_DB_USER=creditdesk_admin

# Every family the nginx template routes; each is started if its binary exists.
FAMILIES=(auth checkout webhook credits sessions bookings pages)

# Who runs what: as root, MariaDB runs as mysql, the responders as nobody and
# nginx's workers as www-data; otherwise everything runs as the caller.
if ((EUID == 0)); then
	DB_OS_USER=mysql
	APP_OS_USER=nobody APP_OS_GROUP=nogroup
	NGINX_OS_USER=www-data NGINX_OS_GROUP=www-data
else
	DB_OS_USER='' APP_OS_USER='' APP_OS_GROUP='' NGINX_OS_USER='' NGINX_OS_GROUP=''
fi

# True if user $1 (group $2) can run `test $3 $4`.
user_can() {
	setpriv --reuid="$1" --regid="$2" --clear-groups test "$3" "$4" 2>/dev/null
}

# True if every service user can traverse directory $1.
services_reach() {
	user_can "${DB_OS_USER:-mysql}" "${DB_OS_USER:-mysql}" -x "$1" &&
		user_can "$NGINX_OS_USER" "$NGINX_OS_GROUP" -x "$1" &&
		user_can "$APP_OS_USER" "$APP_OS_GROUP" -x "$1"
}

# The state directory asked for ($CD_STATE_DIR, default $repo/.state), and
# the one used.  As root the services run as their own users, who must reach
# the datadir, the sockets and the installed responders; a clone in a private
# home (/root is mode 700) cannot give them that, so its state lives under
# /var/lib/creditdesk instead and the asked-for path is a symlink to it
# (made by prepare_state).  Nothing on the way to the clone is opened up.
STATE_ASKED=$(realpath -m "${CD_STATE_DIR:-$REPO/.state}")
state_dir() {
	if ((EUID != 0)) || services_reach "$(dirname "$STATE_ASKED")"; then
		echo "$STATE_ASKED"
	else
		local base=${STATE_ASKED##*/}
		echo "/var/lib/creditdesk/${base#.}-$(printf %s "$STATE_ASKED" | sha256sum | cut -c1-12)"
	fi
}
STATE=$(state_dir)

APP=$STATE/app
DATADIR=$STATE/mysql
DBRUN=$STATE/mysqld
DB_SOCK=$DBRUN/mysqld.sock
RUN=$STATE/run
LOG=$STATE/log
SECRETS=$STATE/secrets
ENV_FILE=$STATE/env
ROOT_CNF=$STATE/root.cnf
ADMIN_CNF=$STATE/admin.cnf
APP_CNF=$STATE/app.cnf
NGINX_PREFIX=$STATE/nginx
NGINX_CONF=$STATE/nginx.conf
NGINX_PID=$NGINX_PREFIX/nginx.pid

BASE_URL=http://127.0.0.1:$HTTP_PORT
EMU_URL=http://127.0.0.1:$EMU_PORT
# The emulator's Stripe.js stand-in; a publishable key is not a secret.
STRIPE_JS_URL=$EMU_URL/v3/
STRIPE_PUBLISHABLE_KEY=pk_test_creditdesk_local
DEMO_PASSWORD=demo-password

log() { echo "stack: $*"; }
warn() { echo "stack: warning: $*" >&2; }
die() { echo "stack: error: $*" >&2; exit 1; }

# ---------------------------------------------------------------- processes

# True if pid is a live (not zombie) process.
alive() {
	local state
	state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
	[[ -n $state && $state != Z ]]
}

# Prints the PID recorded in pidfile if that process is alive and its
# command line contains every given pattern (so a reused PID is never ours).
recorded_pid() {
	local file=$1 pid cmd p
	shift
	[[ -r $file ]] || return 1
	pid=$(<"$file")
	[[ $pid =~ ^[0-9]+$ ]] && alive "$pid" || return 1
	cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
	for p in "$@"; do
		[[ $cmd == *"$p"* ]] || return 1
	done
	echo "$pid"
}

# Waits up to $2 seconds for pid $1 to exit; false if it is still there.
wait_exit() {
	local pid=$1 i
	for ((i = 0; i < $2 * 10; i++)); do
		alive "$pid" || return 0
		sleep 0.1
	done
	! alive "$pid"
}

# Sends $2 to pid $1, escalating to SIGKILL after $3 seconds.
terminate() {
	local pid=$1 sig=$2 timeout=$3
	kill -"$sig" "$pid" 2>/dev/null || return 0
	wait_exit "$pid" "$timeout" && return 0
	warn "pid $pid did not stop after SIG$sig within ${timeout}s; sending SIGKILL"
	kill -KILL "$pid" 2>/dev/null || true
	wait_exit "$pid" 5
}

# Starts a command in the background in its own session, detached from our
# stdin/stdout and from the lock on fd 9, appending output to a log file;
# its PID goes to a pid file.  (A background job of a non-interactive shell is
# not a process-group leader, so setsid execs in place and $! is the daemon.)
launch() {
	local pidfile=$1 logfile=$2
	shift 2
	setsid "$@" </dev/null >>"$logfile" 2>&1 9>&- &
	echo $! >"$pidfile"
}

# True if something accepts TCP connections on 127.0.0.1:$1.
port_busy() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# ---------------------------------------------------------------- state dir

# Creates the state layout, traversable by the service users.
prepare_state() {
	local n
	for n in "$HTTP_PORT" "$DB_PORT" "$EMU_PORT" "$CHILDREN" "$NGINX_WORKERS"; do
		[[ $n =~ ^[1-9][0-9]{0,4}$ ]] || die "ports, CD_CHILDREN and CD_NGINX_WORKERS must be positive integers (got '$n')"
	done
	for n in "$LIMIT_SIGNIN" "$LIMIT_REGISTER" "$LIMIT_CHECKOUT"; do
		[[ $n =~ ^[1-9][0-9]{0,5}:[0-9]{1,6}$ ]] || die "CD_LIMIT_* must be RATE:BURST, e.g. 20:100 (got '$n')"
	done
	link_state_dir
	mkdir -p "$STATE" "$RUN" "$LOG" "$DBRUN" "$NGINX_PREFIX/tmp" "$RUN/publish"
	chmod 755 "$STATE" "$RUN" "$LOG"
	# The chat publisher socket nginx creates in here (root's, mode 666)
	# would let anyone on the machine push into any room: only the
	# responders' group may reach it.
	if ((EUID == 0)); then
		chown "root:$APP_OS_GROUP" "$RUN/publish"
		chmod 750 "$RUN/publish"
	else
		chmod 700 "$RUN/publish"
	fi
	local s
	for s in "$DB_SOCK" "$RUN/publish/chat-publish.sock"; do
		((${#s} < 108)) || die "socket path too long for unix sockets: $s (choose a shorter CD_STATE_DIR)"
	done
	if ((EUID == 0)); then
		user_can mysql mysql -x "$STATE" ||
			die "user mysql cannot reach $STATE; put CD_STATE_DIR somewhere every user can traverse"
		user_can "$NGINX_OS_USER" "$NGINX_OS_GROUP" -x "$RUN" ||
			die "user $NGINX_OS_USER cannot reach $RUN; put CD_STATE_DIR somewhere every user can traverse"
	fi
}

# When the state lives elsewhere (see state_dir), the asked-for path
# becomes a symlink to it; a real directory there is never replaced.
link_state_dir() {
	[[ $STATE != "$STATE_ASKED" ]] || return 0
	mkdir -p "$STATE"
	chmod 755 "$(dirname "$STATE")" "$STATE"
	if [[ -L $STATE_ASKED || ! -e $STATE_ASKED ]]; then
		ln -sfn "$STATE" "$STATE_ASKED"
	else
		die "$STATE_ASKED is a directory the service users cannot reach; move it away (the state now lives in $STATE)"
	fi
}

# Installs what the service users run and read (the responders, templates
# and static files) into $APP, as a package would, so the clone itself can
# stay private; running children keep their old files until replaced.
deploy_app() {
	local new=$STATE/app.new bin n=0
	rm -rf "$new" "$STATE/app.old"
	mkdir -p "$new/bin"
	for bin in "$REPO"/creditdesk-*; do
		[[ -f $bin && -x $bin ]] || continue
		cp "$bin" "$new/bin/"
		n=$((n + 1))
	done
	# The families' supervisor runs as the app user too (see family_start).
	cp "$REPO/scripts/respawn.sh" "$new/bin/"
	cp -R "$REPO/templates" "$new/templates"
	chmod -R a+rX,go-w "$new"
	[[ ! -d $APP ]] || mv "$APP" "$STATE/app.old"
	mv "$new" "$APP"
	rm -rf "$STATE/app.old"
	log "installed $n programs and the templates in $APP"
}

# A random string of $1 letters and digits.
random_token() {
	head -c 96 /dev/urandom | base64 -w0 | tr -dc 'A-Za-z0-9' | cut -c1-"$1"
}

# Secrets are generated once and kept; everything else derives from them.
ensure_secrets() {
	if [[ ! -s $SECRETS ]]; then
		(
			umask 077
			cat >"$SECRETS" <<-EOF
				# creditdesk local stack secrets, generated $(date -u +%Y-%m-%dT%H:%M:%SZ)
				DB_ROOT_PASSWORD=$(random_token 32)
				DB_APP_PASSWORD=$(random_token 32)
				DB_ADMIN_PASSWORD=$(random_token 32)
				STRIPE_SECRET_KEY=sk_test_$(random_token 32)
				STRIPE_WEBHOOK_SECRET=whsec_$(random_token 32)
			EOF
		)
		log "generated secrets in $SECRETS"
	fi
	chmod 600 "$SECRETS"
	# shellcheck source=/dev/null
	source "$SECRETS"
	write_client_cnf "$ROOT_CNF" root "$DB_ROOT_PASSWORD"
	write_client_cnf "$ADMIN_CNF" "$ADMIN_DB_USER" "$DB_ADMIN_PASSWORD"
	write_client_cnf "$APP_CNF" "$APP_DB_USER" "$DB_APP_PASSWORD"
}

# A mariadb client option file for one account over the private socket.
write_client_cnf() {
	(
		umask 077
		cat >"$1" <<-EOF
			[client]
			user=$2
			password=$3
			socket=$DB_SOCK
			default-character-set=utf8mb4
		EOF
	)
}

# The environment every responder and the admin tool read (see src/core/cfg.h):
# the database and the public URL, and no Stripe secret (family_env adds
# those only where they are used).
app_env() {
	APP_ENV=(
		PATH=/usr/local/bin:/usr/bin:/bin TZ=UTC LANG=C.UTF-8
		CD_DB_PORT="$DB_PORT"
		CD_DB_USER="$APP_DB_USER" CD_DB_PASSWORD="$DB_APP_PASSWORD" CD_DB_NAME="$DB_NAME"
		STRIPE_JS_URL="$STRIPE_JS_URL" STRIPE_PUBLISHABLE_KEY="$STRIPE_PUBLISHABLE_KEY"
		CD_PUBLIC_URL="$BASE_URL" CD_TEMPLATE_DIR="$APP/templates"
	)
	if [[ -n $APP_DB_HOST ]]; then
		APP_ENV+=(CD_DB_HOST="$APP_DB_HOST")
	else
		APP_ENV+=(CD_DB_SOCKET="$DB_SOCK" CD_DB_HOST=127.0.0.1)
	fi
	local v
	for v in CD_DB_TIMEOUT CD_BODY_LIMIT CD_STRIPE_TIMEOUT_MS CD_WEBHOOK_TOLERANCE \
		CD_SESSION_IDLE ASAN_OPTIONS UBSAN_OPTIONS; do
		[[ -z ${!v:-} ]] || APP_ENV+=("$v=${!v}")
	done
}

# FAMILY_ENV: family $1's environment, APP_ENV plus only the secrets it uses.
# checkout and bookings call Stripe; webhook calls Stripe and verifies
# signatures, so it alone holds the signing secret (with creditdesk-reconcile,
# which tests run from $STATE/env).  auth, credits, sessions and pages never
# call Stripe and hold neither.
family_env() {
	local stripe=(STRIPE_API_BASE="$EMU_URL" STRIPE_SECRET_KEY="$STRIPE_SECRET_KEY")
	FAMILY_ENV=("${APP_ENV[@]}")
	case $1 in
	checkout | bookings) FAMILY_ENV+=("${stripe[@]}") ;;
	webhook) FAMILY_ENV+=("${stripe[@]}" STRIPE_WEBHOOK_SECRET="$STRIPE_WEBHOOK_SECRET") ;;
	# Chat push: this machine's nginx publisher, or every machine's
	# (CD_CHAT_PUBLISH, set by scripts/cluster.sh); auth ends the streams
	# of sessions it ends.
	sessions | auth) FAMILY_ENV+=(CD_CHAT_PUBLISH="${CD_CHAT_PUBLISH:-unix:$RUN/publish/chat-publish.sock}") ;;
	esac
}

# $STATE/env: everything tests and tools need, shell-sourceable, mode 600.
write_env_file() {
	local -a vars=(
		CD_STATE_DIR="$STATE" CD_REPO="$REPO" CD_STACK="$REPO/scripts/stack.sh"
		CD_BASE_URL="$BASE_URL" CD_PUBLIC_URL="$BASE_URL" CD_HTTP_PORT="$HTTP_PORT"
		CD_EMU_URL="$EMU_URL" CD_EMU_PORT="$EMU_PORT" STRIPE_API_BASE="$EMU_URL"
		STRIPE_SECRET_KEY="$STRIPE_SECRET_KEY" STRIPE_WEBHOOK_SECRET="$STRIPE_WEBHOOK_SECRET"
		STRIPE_JS_URL="$STRIPE_JS_URL" STRIPE_PUBLISHABLE_KEY="$STRIPE_PUBLISHABLE_KEY"
		CD_DB_HOST=127.0.0.1 CD_DB_PORT="$DB_PORT" CD_DB_SOCKET="$DB_SOCK" CD_DB_NAME="$DB_NAME"
		CD_DB_USER="$APP_DB_USER" CD_DB_PASSWORD="$DB_APP_PASSWORD"
		CD_DB_ADMIN_USER="$ADMIN_DB_USER" CD_DB_ADMIN_PASSWORD="$DB_ADMIN_PASSWORD"
		CD_DB_ADMIN_CNF="$ADMIN_CNF" CD_DB_APP_CNF="$APP_CNF"
		CD_TEMPLATE_DIR="$APP/templates" CD_LOG_DIR="$LOG" CD_RUN_DIR="$RUN"
		CD_CHILDREN="$CHILDREN" CD_EMU_RETRY="$EMU_RETRY"
		CD_BOOKS_INTERVAL="${CD_BOOKS_INTERVAL:-180}"	# a restart from this env keeps the loop off in tests
		CD_LIMIT_SIGNIN="$LIMIT_SIGNIN" CD_LIMIT_REGISTER="$LIMIT_REGISTER"
		CD_LIMIT_CHECKOUT="$LIMIT_CHECKOUT" CD_SESSION_IDLE="${CD_SESSION_IDLE:-1800}"
		CD_DEMO_EMAIL=demo@creditdesk.test CD_DEMO_PASSWORD="$DEMO_PASSWORD"
		CD_ADMIN_EMAIL=admin@creditdesk.test CD_PREMIUM_EMAIL=premium@creditdesk.test
		CD_MECHANIC_EMAIL=mechanic@creditdesk.test CD_EXPERT_EMAIL=expert@creditdesk.test
	)
	local kv v tmp q="'"
	tmp=$(umask 077 && mktemp "$STATE/.env.XXXXXX")
	{
		echo "# creditdesk local stack ($STATE): source this file."
		for kv in "${vars[@]}"; do
			v=${kv#*=}
			printf "export %s='%s'\n" "${kv%%=*}" "${v//$q/$q\\$q$q}"
		done
	} >"$tmp"
	mv -f "$tmp" "$ENV_FILE"
}

# ---------------------------------------------------------------- MariaDB

db_pid() { recorded_pid "$RUN/mariadbd.pid" mariadbd "--datadir=$DATADIR"; }

# Initialises the datadir once, then starts mariadbd and waits for it.
db_start() {
	local pid
	if pid=$(db_pid); then
		log "mariadb already running (pid $pid)"
		return 0
	fi
	! port_busy "$DB_PORT" || die "port $DB_PORT is already in use by another process (set CD_DB_PORT)"

	local server_opts=(
		--innodb-buffer-pool-size=128M --innodb-log-file-size=48M
		--character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci
	)
	local user_opt=()
	[[ -z $DB_OS_USER ]] || user_opt=(--user="$DB_OS_USER")

	# First run: create the system tables (root gets a password below).
	if [[ ! -d $DATADIR/mysql ]]; then
		log "initialising MariaDB datadir $DATADIR"
		mariadb-install-db --no-defaults --datadir="$DATADIR" "${user_opt[@]}" \
			--auth-root-authentication-method=normal --skip-test-db \
			"${server_opts[@]}" >"$LOG/mariadb-install.log" 2>&1 ||
			die "mariadb-install-db failed; see $LOG/mariadb-install.log"
	fi
	touch "$LOG/mariadb.log"
	if [[ -n $DB_OS_USER ]]; then
		[[ $(stat -c %U "$DATADIR") == "$DB_OS_USER" ]] || chown -R "$DB_OS_USER:" "$DATADIR"
		chown "$DB_OS_USER:" "$DBRUN" "$LOG/mariadb.log"
	fi
	ln -sfn mysqld/mysqld.sock "$STATE/mysqld.sock"

	launch "$RUN/mariadbd.pid" "$LOG/mariadb.log" mariadbd --no-defaults \
		--datadir="$DATADIR" --socket="$DB_SOCK" --port="$DB_PORT" \
		--bind-address="$DB_BIND" --pid-file="$DBRUN/mysqld.pid" \
		--log-error="$LOG/mariadb.log" --skip-name-resolve \
		--max-connections=300 --default-time-zone=+00:00 \
		"${server_opts[@]}" "${user_opt[@]}" "${DB_EXTRA_OPTS[@]}"
	pid=$(<"$RUN/mariadbd.pid")

	# Ready when the server answers a ping on its socket.
	local i
	for ((i = 0; i < 300; i++)); do
		if mariadb-admin --no-defaults --socket="$DB_SOCK" --connect-timeout=1 ping >/dev/null 2>&1; then
			log "mariadb up (pid $pid, port $DB_PORT, socket $DB_SOCK)"
			db_secure_root
			return 0
		fi
		alive "$pid" || break
		sleep 0.1
	done
	tail -n 20 "$LOG/mariadb.log" >&2 || true
	die "mariadb did not become ready within 30s; see $LOG/mariadb.log"
}

# A fresh datadir has a password-less root (and root@127.0.0.1 etc.); keep
# only root@localhost, with the generated password.
db_secure_root() {
	if mariadb --defaults-file="$ROOT_CNF" -e 'SELECT 1' >/dev/null 2>&1; then
		return 0
	fi
	local bare=(mariadb --no-defaults --socket="$DB_SOCK" -uroot --batch --skip-column-names)
	local accounts account
	accounts=$("${bare[@]}" -e "SELECT CONCAT(QUOTE(User), '@', QUOTE(Host)) FROM mysql.user
		WHERE (User = 'root' AND Host <> 'localhost') OR User = ''") ||
		die "cannot sign in to MariaDB as root (neither with the password in $SECRETS nor without one)"
	for account in $accounts; do
		"${bare[@]}" -e "DROP USER $account"
	done
	"${bare[@]}" -e "ALTER USER root@localhost IDENTIFIED BY '$DB_ROOT_PASSWORD'"
	log "mariadb root account secured"
}

# The database and its two accounts: the application's least-privilege user
# (its grants come from db_grant_app, after migrating) and the admin user for
# migrations and tests.  Passwords follow $SECRETS.
db_setup() {
	local host sql="CREATE DATABASE IF NOT EXISTS $DB_NAME CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;"
	for host in "${DB_USER_HOSTS[@]}"; do
		sql+="
		CREATE USER IF NOT EXISTS '$APP_DB_USER'@'$host' IDENTIFIED BY '$DB_APP_PASSWORD';
		ALTER USER '$APP_DB_USER'@'$host' IDENTIFIED BY '$DB_APP_PASSWORD';
		CREATE USER IF NOT EXISTS '$ADMIN_DB_USER'@'$host' IDENTIFIED BY '$DB_ADMIN_PASSWORD';
		ALTER USER '$ADMIN_DB_USER'@'$host' IDENTIFIED BY '$DB_ADMIN_PASSWORD';
		GRANT ALL PRIVILEGES ON $DB_NAME.* TO '$ADMIN_DB_USER'@'$host';
		GRANT ALL PRIVILEGES ON \`${DB_NAME}_replay\`.* TO '$ADMIN_DB_USER'@'$host';"
	done
	mariadb --defaults-file="$ROOT_CNF" -e "$sql" || die "creating the database and its users failed"
}

# The application's grants, table by table (audit_log and stripe_events
# append-only), renewed after every migration so new tables get them too.
db_grant_app() {
	local host accounts=()
	for host in "${DB_USER_HOSTS[@]}"; do
		accounts+=("'$APP_DB_USER'@'$host'")
	done
	"$REPO/db/grant-app.sh" --defaults-file="$ROOT_CNF" "$DB_NAME" "${accounts[@]}" ||
		die "granting $APP_DB_USER its table privileges failed"
}

# Migrations as the admin user, then the demo rows.
db_migrate() {
	CD_DB_SOCKET=$DB_SOCK CD_DB_HOST='' CD_DB_PORT='' CD_DB_USER=$ADMIN_DB_USER \
		CD_DB_PASSWORD=$DB_ADMIN_PASSWORD CD_DB_NAME=$DB_NAME \
		"$REPO/db/migrate.sh" || die "migrations failed"
	mariadb --defaults-file="$ADMIN_CNF" "$DB_NAME" <"$REPO/db/demo.sql" || die "loading db/demo.sql failed"
	log "demo data loaded"
}

db_stop() {
	local pid
	if pid=$(db_pid); then
		log "stopping mariadb (pid $pid)"
		terminate "$pid" TERM 60
	fi
	rm -f "$RUN/mariadbd.pid"
}

# ---------------------------------------------------------------- emulator

# Known by its state file, not its port: a stop run with other port settings
# still finds it.
emu_pid() { recorded_pid "$RUN/emulator.pid" stripe_emulator.py "--state-file $STATE/emulator.sqlite3"; }

# The emulator keeps its objects in $STATE/emulator.sqlite3, so customers the
# database refers to still exist after a restart.
emu_start() {
	local script=$REPO/emulator/stripe_emulator.py pid i
	if [[ ! -f $script ]]; then
		warn "emulator/stripe_emulator.py not found; Stripe emulator skipped"
		return 0
	fi
	if pid=$(emu_pid); then
		log "emulator already running (pid $pid)"
		return 0
	fi
	! port_busy "$EMU_PORT" || die "port $EMU_PORT is already in use by another process (set CD_EMU_PORT)"
	# The system interpreter, as on a fresh Debian machine (not a pyenv shim).
	local python=/usr/bin/python3
	[[ -x $python ]] || python=python3
	launch "$RUN/emulator.pid" "$LOG/emulator.log" "$python" "$script" \
		--port "$EMU_PORT" --api-key "$STRIPE_SECRET_KEY" \
		--webhook-url "$BASE_URL/api/stripe/webhook" \
		--webhook-secret "$STRIPE_WEBHOOK_SECRET" \
		--retry-schedule "$EMU_RETRY" --public-url "$EMU_URL" \
		--state-file "$STATE/emulator.sqlite3"
	pid=$(<"$RUN/emulator.pid")
	for ((i = 0; i < 150; i++)); do
		if curl -fsS -o /dev/null --max-time 1 "$EMU_URL/_emu/health" 2>/dev/null; then
			log "emulator up (pid $pid, $EMU_URL)"
			return 0
		fi
		alive "$pid" || break
		sleep 0.1
	done
	tail -n 20 "$LOG/emulator.log" >&2 || true
	die "the Stripe emulator did not answer $EMU_URL/_emu/health within 15s; see $LOG/emulator.log"
}

emu_stop() {
	local pid
	if pid=$(emu_pid); then
		log "stopping emulator (pid $pid)"
		terminate "$pid" TERM 10
	fi
	rm -f "$RUN/emulator.pid"
}

# ---------------------------------------------------------------- responders

# The responders under a family's supervisor $1: multiwatch's children.
family_children() {
	local mw
	for mw in $(ps -o pid= --ppid "$1"); do
		[[ $(cat "/proc/$mw/comm" 2>/dev/null) == multiwatch ]] && ps -o pid= --ppid "$mw"
	done
	return 0
}

# The family's supervisor (respawn.sh running multiwatch).
family_pid() { recorded_pid "$RUN/$1.pid" respawn.sh multiwatch "$APP/bin/creditdesk-$1"; }

# One family: spawn-fcgi binds the socket (group = nginx's, mode 0660), drops
# to the app user and execs respawn.sh (scripts/respawn.sh, installed next
# to the responders by deploy_app), which keeps the socket open
# on fd 0 and runs multiwatch on it, starting multiwatch again (with a
# back-off) whenever it exits or runs short of children; multiwatch keeps
# CHILDREN copies of the responder running and replaces any that crash, but
# gives up on a child that dies 3 times in 10 s (and exits when it has given
# up on all of them).
# spawn-fcgi runs with -n so the children's stderr reaches the family log.
family_start() {
	local fam=$1 bin=$APP/bin/creditdesk-$1 sock=$RUN/$1.sock pid i
	local respawn=$APP/bin/respawn.sh
	if [[ ! -x $bin ]]; then
		warn "creditdesk-$fam is not built; $fam skipped (nginx answers 503 for its routes)"
		return 0
	fi
	if pid=$(family_pid "$fam"); then
		log "$fam already running (pid $pid)"
		return 0
	fi
	local opts=(-n -s "$sock" -M 0660)
	if ((EUID == 0)); then
		if user_can "$APP_OS_USER" "$APP_OS_GROUP" -x "$bin" &&
			user_can "$APP_OS_USER" "$APP_OS_GROUP" -r "$respawn" &&
			user_can "$APP_OS_USER" "$APP_OS_GROUP" -r "$APP/templates"; then
			opts+=(-u "$APP_OS_USER" -g "$APP_OS_GROUP" -U "$APP_OS_USER")
		else
			warn "$APP_OS_USER cannot run $bin; $fam runs as root"
		fi
		opts+=(-G "$NGINX_OS_GROUP")
	fi
	rm -f "$sock"
	local logged
	logged=$(stat -c %s "$LOG/$fam.log" 2>/dev/null || echo 0)
	family_env "$fam"
	launch "$RUN/$fam.pid" "$LOG/$fam.log" env -i "${FAMILY_ENV[@]}" \
		spawn-fcgi "${opts[@]}" -- /bin/bash "$respawn" -c "$CHILDREN" -- \
		/usr/bin/multiwatch -f "$CHILDREN" -- "$bin"
	pid=$(<"$RUN/$fam.pid")
	for ((i = 0; i < 50; i++)); do
		[[ -S $sock ]] && break
		alive "$pid" || break
		sleep 0.1
	done
	# Children that die at once (bad configuration) make multiwatch give up,
	# and the supervisor then says so in the log.
	sleep 0.5
	if tail -c +$((logged + 1)) "$LOG/$fam.log" 2>/dev/null | grep -q '^respawn: '; then
		tail -n 10 "$LOG/$fam.log" >&2 || true
		warn "$fam keeps crashing and is being restarted; see $LOG/$fam.log"
	elif [[ -S $sock ]] && alive "$pid"; then
		log "$fam up (pid $pid, $CHILDREN children, $sock)"
	else
		tail -n 10 "$LOG/$fam.log" >&2 || true
		warn "$fam failed to start; see $LOG/$fam.log"
	fi
}

# SIGTERM to the supervisor ends its loop and reaches multiwatch, which sends
# its children SIGUSR1 (libfcgi's graceful stop) and exits once they have.
# The supervisor leads its own process group (launch uses setsid) holding
# multiwatch and the children, so whatever lingers is stopped through it.
family_stop() {
	local fam=$1 pid
	if pid=$(family_pid "$fam"); then
		log "stopping $fam (pid $pid)"
		kill -TERM "$pid" 2>/dev/null || true
		if ! wait_exit "$pid" 10; then
			warn "$fam did not stop within 10s; sending SIGTERM to its process group"
			kill -TERM -- "-$pid" 2>/dev/null || true
			wait_exit "$pid" 5 || kill -KILL -- "-$pid" 2>/dev/null || true
		fi
	fi
	rm -f "$RUN/$fam.pid" "$RUN/$fam.sock"
}

# ---------------------------------------------------------------- nginx

nginx_pid() { recorded_pid "$NGINX_PID" "nginx: master" "$NGINX_CONF"; }

# Idle FastCGI connections each nginx worker keeps per family.  A child
# serves one connection at a time and, on a kept one, waits for its next
# request; so idle kept connections must never hold every child of a family:
# workers × keepalive < children, i.e. keepalive = (children - 1) / workers
# (0: none kept, each request connects anew).
upstream_keepalive() {
	local keep=$(((CHILDREN - 1) / NGINX_WORKERS))
	((keep == 0)) || echo "keepalive $keep;"
}

# nginx/creditdesk.conf.in rendered, on stdout.
nginx_render_text() {
	local user_directive="# workers run as the invoking user"
	[[ -z $NGINX_OS_USER ]] || user_directive="user $NGINX_OS_USER $NGINX_OS_GROUP;"
	sed -e "s|@USER_DIRECTIVE@|$user_directive|g" \
		-e "s|@WORKERS@|$NGINX_WORKERS|g" -e "s|@UPSTREAM_KEEPALIVE@|$(upstream_keepalive)|g" \
		-e "s|@PID_FILE@|$NGINX_PID|g" -e "s|@LOG_DIR@|$LOG|g" \
		-e "s|@TEMP_DIR@|$NGINX_PREFIX/tmp|g" -e "s|@RUN_DIR@|$RUN|g" \
		-e "s|@STATIC_DIR@|$APP/templates/static|g" \
		-e "s|@HEADERS_CONF@|$REPO/nginx/security-headers.conf|g" \
		-e "s|@LISTEN_ADDR@:@HTTP_PORT@|$LISTEN|g" \
		-e "s|@LISTEN_ADDR@|127.0.0.1|g" -e "s|@HTTP_PORT@|$HTTP_PORT|g" \
		-e "s|@SIGNIN_RATE@|${LIMIT_SIGNIN%:*}|g" -e "s|@SIGNIN_BURST@|${LIMIT_SIGNIN#*:}|g" \
		-e "s|@REGISTER_RATE@|${LIMIT_REGISTER%:*}|g" -e "s|@REGISTER_BURST@|${LIMIT_REGISTER#*:}|g" \
		-e "s|@CHECKOUT_RATE@|${LIMIT_CHECKOUT%:*}|g" -e "s|@CHECKOUT_BURST@|${LIMIT_CHECKOUT#*:}|g" \
		"$REPO/nginx/creditdesk.conf.in"
}

# Renders nginx/creditdesk.conf.in into the state dir.
nginx_render() {
	nginx_render_text >"$NGINX_CONF.new"
	if grep -n '@[A-Z_]*@' "$NGINX_CONF.new" >&2; then
		die "unsubstituted placeholders in nginx.conf"
	fi
	mv -f "$NGINX_CONF.new" "$NGINX_CONF"
}

# What the running nginx was started or reloaded with: its configuration
# and the repository's files that configuration includes.
nginx_digest() {
	cat "$NGINX_CONF" "$REPO"/nginx/*.conf | sha256sum | cut -d' ' -f1
}

nginx_start() {
	local pid nginx=(nginx -p "$NGINX_PREFIX/" -e "$LOG/nginx-error.log" -c "$NGINX_CONF")
	nginx_render
	"${nginx[@]}" -t -q 9>&- || die "nginx rejected $NGINX_CONF"
	if pid=$(nginx_pid); then
		# A reload closes the old workers' idle kept connections, and a
		# request a front had just sent on one is reset (a POST is not
		# retried): restarting the responders alone must not reload.
		if [[ $(nginx_digest) == "$(cat "$NGINX_CONF.loaded" 2>/dev/null)" ]]; then
			log "nginx already running (pid $pid) with this configuration"
			return 0
		fi
		kill -HUP "$pid"
		nginx_digest >"$NGINX_CONF.loaded"
		log "nginx already running (pid $pid); configuration reloaded"
		return 0
	fi
	! port_busy "$HTTP_PORT" || die "port $HTTP_PORT is already in use by another process (set CD_HTTP_PORT)"
	# A chat publisher socket left by an nginx that was killed would stop
	# this one binding it; no nginx of this state dir runs now.
	rm -f "$RUN/publish/chat-publish.sock"
	"${nginx[@]}" </dev/null >>"$LOG/nginx-error.log" 2>&1 9>&- ||
		die "nginx failed to start; see $LOG/nginx-error.log"
	local i
	for ((i = 0; i < 50; i++)); do
		pid=$(nginx_pid) && break
		sleep 0.1
	done
	[[ -n $pid ]] || die "nginx did not write $NGINX_PID"
	nginx_digest >"$NGINX_CONF.loaded"
	log "nginx up (pid $pid, $BASE_URL)"
}

nginx_stop() {
	local pid
	if pid=$(nginx_pid); then
		log "stopping nginx (pid $pid)"
		terminate "$pid" QUIT 10
	fi
}

# ---------------------------------------------------------------- demo users

# create-user through the admin tool, which hashes the password; exit code 3
# means the user exists already, which is fine on every start after the first.
demo_user() {
	local rc=0
	env -i "${APP_ENV[@]}" "$REPO/creditdesk-admin" create-user \
		--email "$1" --password "$DEMO_PASSWORD" --name "$2" "${@:3}" \
		>>"$LOG/admin.log" 2>&1 </dev/null || rc=$?
	case $rc in
	0) log "created demo user $1" ;;
	3) ;;
	*) warn "creditdesk-admin create-user $1 failed (exit $rc); see $LOG/admin.log" ;;
	esac
}

demo_users() {
	if [[ ! -x $REPO/creditdesk-admin ]]; then
		warn "creditdesk-admin is not built; demo users not created"
		return 0
	fi
	demo_user demo@creditdesk.test "Demo Customer"
	demo_user admin@creditdesk.test "Demo Admin" --role admin
	demo_user premium@creditdesk.test "Premium Customer" --tier firewall
	demo_user mechanic@creditdesk.test "Demo Mechanic" --role mechanic
	demo_user expert@creditdesk.test "Ada Brooks" --role expert
	# The expert user signs in as demo expert 1 (to complete bookings).
	mariadb --defaults-file="$ADMIN_CNF" "$DB_NAME" -e "UPDATE experts e
		JOIN users u ON u.email = 'expert@creditdesk.test'
		SET e.user_id = u.id WHERE e.id = 1 AND e.user_id IS NULL" ||
		warn "linking expert@creditdesk.test to expert 1 failed"
}

# ---------------------------------------------------------------- books loop

# Proves the books locally as the production timer does: every
# CD_BOOKS_INTERVAL seconds (default 180; 0 turns it off, as test stacks do,
# because reconcile would process webhooks a test is holding back)
# creditdesk-reconcile recovers missed events, then creditdesk-check records
# its run (shown on /admin) and writes $STATE/metrics/creditdesk_books.prom.
# Both get the database and the Stripe API key only, as checkout does.
# Output goes to $LOG/books.log.  Usage: books_loop start|stop
books_loop() {
	local pidfile=$RUN/books.pid interval=${CD_BOOKS_INTERVAL:-180} pid
	pid=$(recorded_pid "$pidfile" creditdesk-books-loop "$APP/bin") || pid=
	if [[ $1 == stop ]]; then
		[[ -z $pid ]] || { kill -TERM -- "-$pid" 2>/dev/null; wait_exit "$pid" 5; }
		return 0
	fi
	[[ -z $pid && $interval =~ ^[0-9]+$ && $interval -gt 0 && -x $APP/bin/creditdesk-check ]] ||
		return 0
	mkdir -p "$STATE/metrics"
	family_env checkout
	# shellcheck disable=SC2016 # the loop's own arguments, expanded there
	launch "$pidfile" "$LOG/books.log" env -i "${FAMILY_ENV[@]}" bash -c '
		while sleep "$2"; do
			"$1/creditdesk-reconcile"
			"$1/creditdesk-check" --record --metrics "$3" >/dev/null
			echo "books: $(date -u +%FT%TZ) check exit $?"
		done' creditdesk-books-loop "$APP/bin" "$interval" "$STATE/metrics/creditdesk_books.prom"
	log "books loop every ${interval}s ($LOG/books.log)"
}

# ---------------------------------------------------------------- commands

# Serialises commands on one state dir (daemons never inherit fd 9).
take_lock() {
	mkdir -p "$STATE"
	exec 9>"$STATE/.lock"
	flock -w 120 9 || die "another stack.sh is busy with $STATE"
}

cmd_start() {
	take_lock
	prepare_state
	ensure_secrets
	app_env
	write_env_file
	db_start
	db_setup
	db_migrate
	db_grant_app
	emu_start
	deploy_app
	local fam
	for fam in "${FAMILIES[@]}"; do
		family_start "$fam"
	done
	nginx_start
	demo_users
	books_loop start
	echo
	echo "creditdesk is running at $BASE_URL/"
	echo "  sign in as demo@creditdesk.test / $DEMO_PASSWORD (also admin@, premium@, mechanic@, expert@creditdesk.test)"
	echo "  environment for tests: source $ENV_FILE   (or: eval \"\$($0 env)\")"
}

cmd_stop() {
	take_lock
	books_loop stop
	nginx_stop
	local fam
	for fam in "${FAMILIES[@]}"; do
		family_stop "$fam"
	done
	emu_stop
	db_stop
	log "stopped"
}

cmd_setup_db() {
	take_lock
	prepare_state
	ensure_secrets
	app_env
	db_setup
	db_migrate
	db_grant_app
	demo_users
}

# The responders and nginx of this state dir only (a cluster machine).
cmd_start_app() {
	take_lock
	prepare_state
	ensure_secrets
	app_env
	write_env_file
	deploy_app
	local fam
	for fam in "${FAMILIES[@]}"; do
		family_start "$fam"
	done
	nginx_start
}

cmd_stop_app() {
	take_lock
	nginx_stop
	local fam
	for fam in "${FAMILIES[@]}"; do
		family_stop "$fam"
	done
}

cmd_start_emu() {
	take_lock
	prepare_state
	ensure_secrets
	emu_start
}

cmd_stop_emu() {
	take_lock
	emu_stop
}

cmd_start_db() {
	take_lock
	prepare_state
	ensure_secrets
	db_start
}

cmd_stop_db() {
	take_lock
	db_stop
}

# One line per component; exit 3 when something that could run does not.
cmd_status() {
	local pid fam bad=0
	if pid=$(db_pid); then
		echo "mariadb   running  pid $pid  127.0.0.1:$DB_PORT  $DB_SOCK"
	else
		echo "mariadb   stopped"; bad=1
	fi
	if pid=$(emu_pid); then
		echo "emulator  running  pid $pid  $EMU_URL"
	elif [[ -f $REPO/emulator/stripe_emulator.py ]]; then
		echo "emulator  stopped"; bad=1
	else
		echo "emulator  missing  (emulator/stripe_emulator.py)"
	fi
	for fam in "${FAMILIES[@]}"; do
		if pid=$(family_pid "$fam"); then
			printf '%-9s running  pid %s  %s children  %s\n' "$fam" "$pid" \
				"$(family_children "$pid" | wc -l)" "$RUN/$fam.sock"
		elif [[ -x $REPO/creditdesk-$fam ]]; then
			printf '%-9s stopped\n' "$fam"; bad=1
		else
			printf '%-9s not built\n' "$fam"
		fi
	done
	if pid=$(nginx_pid); then
		echo "nginx     running  pid $pid  $BASE_URL/"
	else
		echo "nginx     stopped"; bad=1
	fi
	return $((bad ? 3 : 0))
}

cmd_env() {
	[[ -r $ENV_FILE ]] || die "no $ENV_FILE yet; run: $0 start"
	cat "$ENV_FILE"
}

main() {
	case ${1:-} in
	start) cmd_start ;;
	stop) cmd_stop ;;
	restart) cmd_stop; exec 9>&-; cmd_start ;;
	status) cmd_status ;;
	env) cmd_env ;;
	state-dir) echo "$STATE" ;;
	nginx-conf) nginx_render_text ;;
	start-db) cmd_start_db ;;
	stop-db) cmd_stop_db ;;
	restart-db) cmd_stop_db; cmd_start_db ;;
	setup-db) cmd_setup_db ;;
	start-app) cmd_start_app ;;
	stop-app) cmd_stop_app ;;
	start-emu) cmd_start_emu ;;
	stop-emu) cmd_stop_emu ;;
	*)
		echo "usage: $0 start|stop|restart|status|env|state-dir|start-db|stop-db|restart-db|setup-db|start-app|stop-app|start-emu|stop-emu" >&2
		exit 2
		;;
	esac
}

main "$@"
