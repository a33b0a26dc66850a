#!/usr/bin/env bash
# creditdesk on three "machines" of this one host: each machine is a network
# namespace (cdcl1..cdcl3, address 10.213.0.1N) joined by a veth pair to a
# bridge that lives in a namespace of its own (cdcl0), and runs what one real
# machine would: a MariaDB Galera node (the three form one cluster, SST and
# IST between them over the bridge), every route family's responders, which
# use their local node first and the others when it is gone, and nginx.  In
# front, on 127.0.0.1, a load-balancing nginx spreads requests over the
# three machines' nginx with passive health checks, and one Stripe emulator
# sends its webhooks to that front.  A chat message is pushed to every
# machine's nginx (chat_publishers), where the room's subscribers wait.
# Each machine is one scripts/stack.sh state dir run inside its namespace
# (start-db, setup-db, start-app).
#
# The front reaches each machine's nginx, and each machine reaches the
# emulator, through unix sockets (a path crosses network namespaces; inside
# a machine, a socat on its own 127.0.0.1:$EMU_PORT leads to the emulator).
# Nothing is routed between the namespaces and the host's network.
#
# Usage: scripts/cluster.sh start|stop|status|env
#        scripts/cluster.sh kill-node N|start-node N      (mariadbd: kill -9 / restart, rejoins by IST)
#        scripts/cluster.sh kill-app N|start-app N        (the machine's responders: kill -9 / restart)
#        scripts/cluster.sh partition N|heal N            (cut node N off the bridge / reconnect it)
#        scripts/cluster.sh deploy                        (new migrations, then a rolling restart of every machine's responders)
#        scripts/cluster.sh front [N...]                  (the front balances over these machines only; default all)
#        scripts/cluster.sh sock N                        (the unix socket of machine N's nginx)
#        scripts/cluster.sh exec N CMD...                 (CMD on machine N, with its responders' database settings)
#
# Settings: CD_CLUSTER_DIR (default $repo/.state-cluster), CD_CLUSTER_PORT
# (front nginx, 18200), CD_CLUSTER_EMU_PORT (12206), CD_CLUSTER_DB_PORT
# (13406, inside each namespace), CD_CLUSTER_MACHINES (3), CD_CHILDREN.
set -euo pipefail
umask 022

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CL_ASKED=$(realpath -m "${CD_CLUSTER_DIR:-$REPO/.state-cluster}")
PORT=${CD_CLUSTER_PORT:-18200}
EMU_PORT=${CD_CLUSTER_EMU_PORT:-12206}
DB_PORT=${CD_CLUSTER_DB_PORT:-13406}
MACHINES=${CD_CLUSTER_MACHINES:-3}
CHILDREN=${CD_CHILDREN:-2}
NET=10.213.0
HUB=cdcl0
BRIDGE=cdclbr
GALERA=/usr/lib/galera/libgalera_smm.so

log() { echo "cluster: $*"; }
die() { echo "cluster: error: $*" >&2; exit 1; }

ns() { echo "cdcl$1"; }
ip_of() { echo "$NET.1$1"; }

# ---------------------------------------------------------------- stack.sh per machine

# Runs scripts/stack.sh for the front (N=0: the emulator) or machine N,
# inside machine N's namespace, with that machine's settings only.
stack() {
	local n=$1 cmd=$2
	local vars=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
		HOME=/root LANG=C.UTF-8 TZ=UTC
		CD_HTTP_PORT="$PORT" CD_EMU_PORT="$EMU_PORT" CD_DB_PORT="$DB_PORT"
		CD_EMU_RETRY=1,1,2,2,4 CD_CHILDREN="$CHILDREN"
		# A statement stuck on a node (one that lost its peers, say) is
		# given up after 6 s, and the transaction runs again elsewhere.
		CD_DB_TIMEOUT="${CD_DB_TIMEOUT:-6}")
	if ((n == 0)); then
		env -i "${vars[@]}" CD_STATE_DIR="$CL_ASKED/front" bash "$REPO/scripts/stack.sh" "$cmd"
		return
	fi
	ip netns exec "$(ns "$n")" env -i "${vars[@]}" \
		CD_STATE_DIR="$CL_ASKED/m$n" CD_LISTEN="unix:$(mstate "$n")/run/http.sock" \
		CD_CHAT_PUBLISH="$(chat_publishers)" \
		CD_DB_BIND="$(ip_of "$n")" CD_DB_USER_HOSTS="localhost 127.0.0.1 $NET.%" \
		CD_APP_DB_HOST="$(db_hosts "$n")" CD_DB_OPTS="$(galera_opts "$n") ${DB_MORE_OPTS:-}" \
		bash "$REPO/scripts/stack.sh" "$cmd"
}

# The database hosts of machine N's programs: its own node first, then the others.
db_hosts() {
	local i hosts
	hosts=$(ip_of "$1")
	for ((i = 1; i <= MACHINES; i++)); do
		((i == $1)) || hosts+=",$(ip_of "$i")"
	done
	echo "$hosts"
}

# Runs a command on machine N as its responders run: in its namespace, with
# its database settings (local node first).
cmd_exec() {
	local n=$1 st
	shift
	st=$(mstate "$n")
	# shellcheck disable=SC1091  # the machine's env, written by stack.sh
	(. "$st/env" && ip netns exec "$(ns "$n")" env -u CD_DB_SOCKET \
		CD_DB_HOST="$(db_hosts "$n")" CD_DB_TIMEOUT="${CD_DB_TIMEOUT:-6}" "$@")
}

# Chat push: every machine's responders publish each message to every
# machine's nginx (its publisher socket; a path reaches across the
# namespaces), so a subscriber gets it whichever machine holds its stream.
chat_publishers() {
	local i out=()
	for ((i = 1; i <= MACHINES; i++)); do
		out+=("unix:$(mstate "$i")/run/publish/chat-publish.sock")
	done
	(IFS=,; echo "${out[*]}")
}

# The state dir stack.sh really uses for machine N (0: the front).
mstate() {
	local dir=$CL_ASKED/m$1
	(($1 != 0)) || dir=$CL_ASKED/front
	CD_STATE_DIR=$dir bash "$REPO/scripts/stack.sh" state-dir
}

# The wsrep settings of node N (see README, "Running on several machines").
galera_opts() {
	local n=$1 addrs=() i
	for ((i = 1; i <= MACHINES; i++)); do
		addrs+=("$(ip_of "$i")")
	done
	local me
	me=$(ip_of "$n")
	echo "--wsrep-on=ON --wsrep-provider=$GALERA --wsrep-cluster-name=creditdesk" \
		"--wsrep-cluster-address=gcomm://$(IFS=,; echo "${addrs[*]}")" \
		"--wsrep-node-address=$me --wsrep-node-name=m$n --wsrep-sst-method=rsync" \
		"--wsrep-sst-receive-address=$me" \
		"--wsrep-provider-options=gmcast.listen_addr=tcp://$me:4567;ist.recv_addr=$me;gcache.size=128M;evs.suspect_timeout=PT3S;evs.inactive_timeout=PT6S;evs.install_timeout=PT5S" \
		"--wsrep-sync-wait=1 --wsrep-slave-threads=1 --binlog-format=ROW" \
		"--log-bin-trust-function-creators=ON" \
		"--default-storage-engine=InnoDB --innodb-autoinc-lock-mode=2" \
		"--innodb-flush-log-at-trx-commit=2"
}

# ---------------------------------------------------------------- network

net_up() {
	ip netns list | grep -qw "$HUB" || ip netns add "$HUB"
	ip -n "$HUB" link set lo up
	ip -n "$HUB" link show "$BRIDGE" >/dev/null 2>&1 ||
		ip -n "$HUB" link add "$BRIDGE" type bridge
	ip -n "$HUB" link set "$BRIDGE" up
	local n
	for ((n = 1; n <= MACHINES; n++)); do
		local m
		m=$(ns "$n")
		ip netns list | grep -qw "$m" || ip netns add "$m"
		ip -n "$m" link set lo up
		if ! ip -n "$m" link show eth0 >/dev/null 2>&1; then
			ip -n "$HUB" link add "cdclh$n" type veth peer name eth0 netns "$m"
			ip -n "$HUB" link set "cdclh$n" master "$BRIDGE" up
			ip -n "$m" addr add "$(ip_of "$n")/24" dev eth0
		fi
		ip -n "$m" link set eth0 up
	done
}

net_down() {
	local n
	for ((n = 1; n <= MACHINES; n++)); do
		ip netns del "$(ns "$n")" 2>/dev/null || true
	done
	ip netns del "$HUB" 2>/dev/null || true
}

# ---------------------------------------------------------------- small processes

# A process recorded in $FRONT/run/<name>.pid, alive and matching pattern.
our_pid() {
	local file=$FRONT/run/$1.pid pid
	[[ -r $file ]] || return 1
	pid=$(<"$file")
	[[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$2" || return 1
	echo "$pid"
}

stop_pid() {
	local pid i
	pid=$(our_pid "$1" "$2") || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	rm -f "$FRONT/run/$1.pid"
}

# The emulator, for processes inside the namespaces: a unix socket on the
# host side, and in each machine a listener on its own 127.0.0.1:$EMU_PORT.
emu_bridge_start() {
	local sock=$FRONT/run/emu.sock n
	if ! our_pid emu-bridge "$sock" >/dev/null; then
		rm -f "$sock"
		setsid socat "UNIX-LISTEN:$sock,fork,mode=666" "TCP:127.0.0.1:$EMU_PORT" \
			</dev/null >>"$FRONT/log/emu-bridge.log" 2>&1 &
		echo $! >"$FRONT/run/emu-bridge.pid"
	fi
	for ((n = 1; n <= MACHINES; n++)); do
		our_pid "emu-bridge-$n" "$sock" >/dev/null && continue
		ip netns exec "$(ns "$n")" setsid socat \
			"TCP-LISTEN:$EMU_PORT,bind=127.0.0.1,reuseaddr,fork" "UNIX-CONNECT:$sock" \
			</dev/null >>"$FRONT/log/emu-bridge.log" 2>&1 &
		echo $! >"$FRONT/run/emu-bridge-$n.pid"
	done
}

emu_bridge_stop() {
	local n
	for ((n = 1; n <= MACHINES; n++)); do
		stop_pid "emu-bridge-$n" "$FRONT/run/emu.sock"
	done
	stop_pid emu-bridge "$FRONT/run/emu.sock"
}

# ---------------------------------------------------------------- Galera nodes

node_pid() {
	local file
	file=$(mstate "$1")/run/mariadbd.pid
	[[ -r $file ]] || return 1
	local pid
	pid=$(<"$file")
	[[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
		tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q mariadbd && echo "$pid"
}

# A status variable of node N, over its socket as root.
node_status() {
	mariadb --defaults-file="$(mstate "$1")/root.cnf" --batch --skip-column-names \
		--connect-timeout=2 -e "SHOW STATUS LIKE '$2'" 2>/dev/null | awk '{ print $2 }'
}

wait_synced() {
	local i
	for ((i = 0; i < ${2:-120} * 5; i++)); do
		[[ $(node_status "$1" wsrep_local_state_comment) == Synced ]] && return 0
		sleep 0.2
	done
	return 1
}

# True if any node other than N runs.
others_run() {
	local i
	for ((i = 1; i <= MACHINES; i++)); do
		((i == $1)) && continue
		node_pid "$i" >/dev/null && return 0
	done
	return 1
}

# After a crash (grastate seqno -1) the node's position is recovered from
# InnoDB (mariadbd --wsrep-recover), so that it rejoins by IST.
recovered_position() {
	local st=$1 grastate=$1/mysql/grastate.dat out
	[[ -f $grastate ]] || return 0
	grep -q '^seqno: *-1' "$grastate" || return 0
	out=$(mktemp "$st/log/recover.XXXXXX")
	chown mysql: "$out"
	# shellcheck disable=SC2046  # galera_opts is a list of words
	ip netns exec "$(ns "$2")" mariadbd --no-defaults --user=mysql --datadir="$st/mysql" \
		--innodb-buffer-pool-size=128M --innodb-log-file-size=48M \
		$(galera_opts "$2") --wsrep-recover \
		--log-error="$out" --skip-networking --socket="$st/mysqld/recover.sock" >/dev/null 2>&1 || true
	sed -n 's/.*WSREP: Recovered position: *\([0-9a-f-]*:-\?[0-9]*\).*/\1/p' "$out" | tail -n 1
	rm -f "$out"
}

node_start() {
	local n=$1 st pos
	if node_pid "$n" >/dev/null; then
		log "node $n already running"
		return 0
	fi
	st=$(mstate "$n")
	pos=$(recovered_position "$st" "$n")
	DB_MORE_OPTS=
	[[ -z $pos ]] || DB_MORE_OPTS="--wsrep-start-position=$pos"
	if ! others_run "$n"; then
		# No cluster to join: this node starts a new one from its data.
		[[ ! -f $st/mysql/grastate.dat ]] ||
			sed -i 's/^safe_to_bootstrap: *0/safe_to_bootstrap: 1/' "$st/mysql/grastate.dat"
		DB_MORE_OPTS+=" --wsrep-new-cluster"
	fi
	log "starting node $n${pos:+ at $pos}${DB_MORE_OPTS:+ ($DB_MORE_OPTS)}"
	stack "$n" start-db
	DB_MORE_OPTS=
	wait_synced "$n" 120 || die "node $n did not reach Synced; see $st/log/mariadb.log"
	log "node $n synced (cluster size $(node_status "$n" wsrep_cluster_size))"
}

# ---------------------------------------------------------------- front nginx

FRONT_MACHINES=()

front_conf() {
	local n servers=""
	((${#FRONT_MACHINES[@]} > 0)) || mapfile -t FRONT_MACHINES < <(seq 1 "$MACHINES")
	for n in "${FRONT_MACHINES[@]}"; do
		servers+="		server unix:$(mstate "$n")/run/http.sock max_fails=2 fail_timeout=3s;
"
	done
	cat >"$FRONT/front.conf.new" <<-EOF
		# The front of the cluster (rendered by scripts/cluster.sh).
		user www-data www-data;
		worker_processes 2;
		pid $FRONT/nginx/front.pid;
		error_log $FRONT/log/front-error.log warn;
		events { worker_connections 1024; }
		http {
			access_log $FRONT/log/front-access.log;
			client_body_temp_path $FRONT/nginx/tmp/client_body;
			proxy_temp_path $FRONT/nginx/tmp/proxy;
			fastcgi_temp_path $FRONT/nginx/tmp/fastcgi;
			uwsgi_temp_path $FRONT/nginx/tmp/uwsgi;
			scgi_temp_path $FRONT/nginx/tmp/scgi;
			client_max_body_size 1m;
			upstream cd_machines {
		$servers		keepalive 32;
			}
			# A WebSocket's upgrade is passed on (Connection is hop-by-hop);
			# every other request keeps its connection to the machine.
			map \$http_upgrade \$creditdesk_connection {
				default upgrade;
				""      "";
			}
			server {
				listen 127.0.0.1:$PORT;
				location / {
					proxy_pass http://cd_machines;
					proxy_http_version 1.1;
					proxy_set_header Upgrade \$http_upgrade;
					proxy_set_header Connection \$creditdesk_connection;
					proxy_set_header Host \$http_host;
					proxy_set_header X-Forwarded-For \$remote_addr;
					# A machine that fails (or answers 502/503) is left
					# out for fail_timeout; only requests that may be
					# repeated go on to the next one.
					proxy_next_upstream error timeout http_502 http_503;
					proxy_next_upstream_tries 3;
					proxy_connect_timeout 2s;
					proxy_read_timeout 60s;
				}
			}
		}
	EOF
	mv -f "$FRONT/front.conf.new" "$FRONT/front.conf"
}

front_pid() {
	local pid
	[[ -r $FRONT/nginx/front.pid ]] || return 1
	pid=$(<"$FRONT/nginx/front.pid")
	kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$FRONT/front.conf" &&
		echo "$pid"
}

front_start() {
	mkdir -p "$FRONT/nginx/tmp"
	front_conf
	local nginx=(nginx -p "$FRONT/nginx/" -e "$FRONT/log/front-error.log" -c "$FRONT/front.conf")
	"${nginx[@]}" -t -q || die "nginx rejected $FRONT/front.conf"
	if front_pid >/dev/null; then
		kill -HUP "$(front_pid)"
	else
		"${nginx[@]}" </dev/null
	fi
	log "front nginx on http://127.0.0.1:$PORT/"
}

front_stop() {
	local pid i
	pid=$(front_pid) || return 0
	kill -QUIT "$pid"
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
}

# ---------------------------------------------------------------- commands

# Every machine shares the front's secrets (database passwords, Stripe keys).
share_secrets() {
	local n st
	for ((n = 1; n <= MACHINES; n++)); do
		st=$(mstate "$n")
		mkdir -p "$st"
		[[ -s $st/secrets ]] || install -m 600 "$FRONT/secrets" "$st/secrets"
	done
}

write_env() {
	{
		stack 1 env | grep -v -e CD_BASE_URL -e CD_PUBLIC_URL -e CD_STATE_DIR
		echo "export CD_BASE_URL='http://127.0.0.1:$PORT' CD_PUBLIC_URL='http://127.0.0.1:$PORT'"
		echo "export CD_STATE_DIR='$(mstate 1)' CD_CLUSTER='$REPO/scripts/cluster.sh'"
		echo "export CD_CLUSTER_MACHINES='$MACHINES' CD_CLUSTER_FRONT='$FRONT'"
		local n more="front=$FRONT/log"
		for ((n = 2; n <= MACHINES; n++)); do
			more+=":m$n=$(mstate "$n")/log"
		done
		# the other logs a failing test's report shows (CD_LOG_DIR is machine 1's)
		echo "export CD_MORE_LOG_DIRS='$more'"
		for ((n = 1; n <= MACHINES; n++)); do
			echo "export CD_MACHINE${n}_SOCK='$(mstate "$n")/run/http.sock'"
			echo "export CD_MACHINE${n}_ROOT_CNF='$(mstate "$n")/root.cnf'"
			echo "export CD_MACHINE${n}_ADMIN_CNF='$(mstate "$n")/admin.cnf'"
		done
	} >"$FRONT/env.new"
	chmod 600 "$FRONT/env.new"
	mv -f "$FRONT/env.new" "$FRONT/env"
}

cmd_start() {
	net_up
	stack 0 start-emu
	mkdir -p "$FRONT/run" "$FRONT/log"
	share_secrets
	emu_bridge_start
	local n
	for ((n = 1; n <= MACHINES; n++)); do
		node_start "$n"
		((n > 1)) || stack 1 setup-db
	done
	for ((n = 1; n <= MACHINES; n++)); do
		stack "$n" start-app
	done
	front_start
	write_env
	log "running: http://127.0.0.1:$PORT/  (environment for tests: $FRONT/env)"
}

cmd_stop() {
	front_stop
	local n
	for ((n = 1; n <= MACHINES; n++)); do
		ip netns list | grep -qw "$(ns "$n")" || continue
		stack "$n" stop-app || true
	done
	# Responder children that outlived their multiwatch (a killed one,
	# say) run this cluster's own binaries: end them by PID.
	local pid
	for ((n = 1; n <= MACHINES; n++)); do
		for pid in $(pgrep -f "^$(mstate "$n")/app/bin/creditdesk-" || true); do
			kill -TERM "$pid" 2>/dev/null || true
		done
	done
	# The last node down is the one that can start the cluster again.
	for ((n = MACHINES; n >= 1; n--)); do
		ip netns list | grep -qw "$(ns "$n")" || continue
		stack "$n" stop-db || true
	done
	emu_bridge_stop
	stack 0 stop-emu || true
	net_down
	log "stopped"
}

cmd_status() {
	local n bad=0 state size
	for ((n = 1; n <= MACHINES; n++)); do
		echo "== machine $n ($(ns "$n"), $(ip_of "$n"))"
		if ip netns list | grep -qw "$(ns "$n")"; then
			stack "$n" status | grep -v "^emulator" || true
			state=$(node_status "$n" wsrep_local_state_comment)
			size=$(node_status "$n" wsrep_cluster_size)
			echo "galera    ${state:-down}  cluster size ${size:-?}"
			[[ $state == Synced ]] || bad=1
		else
			echo "namespace missing"; bad=1
		fi
	done
	if front_pid >/dev/null; then
		echo "front     running  pid $(front_pid)  http://127.0.0.1:$PORT/"
	else
		echo "front     stopped"; bad=1
	fi
	return $((bad ? 3 : 0))
}

# kill -9 of every responder of machine N (the machine's nginx stays).
cmd_kill_app() {
	local st fam pid child
	st=$(mstate "$1")
	for fam in "$st"/run/*.pid; do
		[[ $fam == */mariadbd.pid ]] && continue
		pid=$(<"$fam")
		tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q multiwatch || continue
		for child in $(ps -o pid= --ppid "$pid"); do
			kill -KILL "$child" 2>/dev/null || true
		done
		kill -KILL "$pid" 2>/dev/null || true
	done
	log "machine $1: responders killed"
}

machine_arg() {
	[[ ${1:-} =~ ^[1-9]$ ]] && (($1 <= MACHINES)) || die "machine number 1..$MACHINES expected"
}

main() {
	((EUID == 0)) || die "run as root (network namespaces)"
	mkdir -p "$CL_ASKED"
	FRONT=$(mstate 0)
	local cmd=${1:-}
	case $cmd in
	kill-node|start-node|kill-app|start-app|partition|heal|sock|exec) machine_arg "${2:-}" ;;
	esac
	case $cmd in
	start) cmd_start ;;
	stop) cmd_stop ;;
	status) cmd_status ;;
	env) cat "$FRONT/env" ;;
	kill-node)
		local pid
		pid=$(node_pid "$2") || die "node $2 is not running"
		kill -KILL "$pid"
		log "node $2: mariadbd (pid $pid) killed"
		;;
	start-node) node_start "$2" ;;
	kill-app) cmd_kill_app "$2" ;;
	start-app) stack "$2" start-app ;;
	partition) ip -n "$(ns "$2")" link set eth0 down; log "node $2 cut off" ;;
	heal) ip -n "$(ns "$2")" link set eth0 up; log "node $2 reconnected" ;;
	sock) echo "$(mstate "$2")/run/http.sock" ;;
	exec)
		local m=$2
		shift 2
		cmd_exec "$m" "$@"
		;;
	deploy)
		local n
		stack 1 setup-db	# new migrations first; they replicate
		for ((n = 1; n <= MACHINES; n++)); do
			stack "$n" stop-app
			stack "$n" start-app
		done
		;;
	front)
		shift
		FRONT_MACHINES=("$@")
		front_start
		;;
	*)
		echo "usage: $0 start|stop|status|env|kill-node N|start-node N|kill-app N|start-app N|partition N|heal N|sock N|exec N CMD..." >&2
		exit 2
		;;
	esac
}

main "$@"
