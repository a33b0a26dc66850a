#!/usr/bin/env bash
# Keeps one command running: whenever it exits (for any reason, with any
# status) it is started again, after a pause that doubles from 0.25 s up to
# a cap while it keeps dying within 10 s of starting, and drops back to
# 0.25 s once it has stayed up that long.  The local stack runs each route
# family's multiwatch under it: multiwatch gives up on a child that dies 3
# times in 10 s and exits once every child has, and this brings the family
# back.  Our file descriptors (the listening FastCGI socket on fd 0, bound by
# spawn-fcgi) stay open here across restarts, so nginx's connections wait in
# the socket's backlog instead of being refused.
#
# multiwatch also gives up on a single child while the others live, which
# would leave the family short for good; with -c N the command is expected to
# keep N children, and when it has had fewer for 3 checks a second apart it
# is stopped (SIGTERM: gracefully) and started again like any other exit.
#
# SIGTERM, SIGINT or SIGHUP is passed on to the command (multiwatch then
# stops its children gracefully) and ends the loop once the command exits.
#
# Usage: respawn.sh [-m MAX_DELAY_SECONDS] [-c CHILDREN] -- command [args...]
set -u

usage() { echo "usage: respawn.sh [-m MAX_DELAY_SECONDS] [-c CHILDREN] -- command [args...]" >&2; exit 2; }
max_ms=4000 want=0
while [[ ${1:-} == -[mc] ]]; do
	[[ ${2:-} =~ ^[1-9][0-9]{0,2}$ ]] || usage
	case $1 in
	-m) max_ms=$(($2 * 1000)) ;;
	-c) want=$2 ;;
	esac
	shift 2
done
[[ ${1:-} == -- ]] && shift
(($# > 0)) || usage

first_ms=250 healthy_s=10
child='' stopping=0

# Forwarded to whatever runs now (the command, or the back-off sleep).
on_signal() {
	stopping=1
	[[ -z $child ]] || kill -"$1" "$child" 2>/dev/null
}
trap 'on_signal TERM' TERM
trap 'on_signal INT' INT
trap 'on_signal HUP' HUP

# True while $child runs (an exited child stays a zombie until waited for).
running() {
	local _pid _comm state
	read -r _pid _comm state _ 2>/dev/null <"/proc/$child/stat" && [[ $state != Z ]]
}

# With -c: polls $child once a second until it exits, stopping it when it
# has been short of children three times in a row.  Builtins only (a read
# that times out on the $tick pipe, the kernel's list of children), as this
# runs for every family all the time.
watch_children() {
	local short=0 n kids
	while ((!stopping)) && running; do
		read -rt 1 -u "$tick"
		kids=()
		read -ra kids 2>/dev/null <"/proc/$child/task/$child/children"
		n=${#kids[@]}
		if ((n >= want)); then
			short=0
		elif ((++short == 3)); then
			echo "respawn: $1 runs $n of $want children; restarting it" >&2
			kill -TERM "$child" 2>/dev/null
		fi
	done
}

# Waits for $child to exit (a trapped signal interrupts `wait`; go on
# waiting) and returns its status.
wait_child() {
	local rc
	while :; do
		wait "$child"
		rc=$?
		kill -0 "$child" 2>/dev/null || return "$rc"
	done
}

main() {
	local started rc pause delay_ms=$first_ms tick
	# A pipe nobody writes to: reading it with a timeout is a sleep in-process.
	exec {tick}<> <(:)
	while ((!stopping)); do
		started=$SECONDS
		# Explicit <&0: a background job would otherwise get /dev/null as stdin.
		"$@" <&0 {tick}<&- &
		child=$!
		# A signal that came before $child was set is passed on now.
		((!stopping)) || kill -TERM "$child" 2>/dev/null
		((want == 0)) || watch_children "$1"
		wait_child
		rc=$?
		child=''
		((!stopping)) || break
		((SECONDS - started < healthy_s)) || delay_ms=$first_ms
		printf -v pause '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000))
		echo "respawn: $1 exited with status $rc; starting it again in ${pause}s" >&2
		sleep "$pause" &
		child=$!
		wait_child
		child=''
		delay_ms=$((delay_ms * 2 > max_ms ? max_ms : delay_ms * 2))
	done
}

# On one line: bash reads a script as it runs it, so nothing after this is
# read from a file that an update may have changed meanwhile.
main "$@"; exit 0
