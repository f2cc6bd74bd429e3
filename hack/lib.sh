# Shared by the hack/ scripts (source it). The caller defines log().

have_iptables() {
	command -v iptables >/dev/null && command -v iptables-save >/dev/null && command -v iptables-restore >/dev/null
}

# ensure_iptables installs iptables when it is missing (Debian's package).
# It returns 1 when iptables is missing and this is not root, so that the
# caller decides whether that is fatal.
ensure_iptables() {
	if have_iptables; then
		return 0
	fi
	if [[ $EUID -ne 0 ]]; then
		return 1
	fi
	if ! command -v apt-get >/dev/null; then
		log "iptables is missing and there is no apt-get to install it; install the iptables package"
		exit 1
	fi
	log "iptables is missing; installing it: apt-get update && apt-get install -y iptables"
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends iptables
	have_iptables
	log "installed: $(iptables --version)"
}

# parse_build_args reads the arguments of a script that builds binaries into
# the cache: --print-dir sets print_dir_only=true (print the bin directory,
# build nothing); -h prints the usage.
parse_build_args() {
	print_dir_only=false
	while [[ $# -gt 0 ]]; do
		case "$1" in
		--print-dir) print_dir_only=true ;;
		-h | --help)
			echo "usage: $0 [--print-dir]" >&2
			exit 0
			;;
		*)
			echo "usage: $0 [--print-dir]" >&2
			exit 2
			;;
		esac
		shift
	done
}

# lock_build_dir holds the lock of a cache bin directory on file descriptor 9
# until the script exits: a second build of the same set waits for the first
# instead of repeating many minutes of work. Commands that may outlive the
# script (a compiler) must run with 9>&-.
lock_build_dir() {
	exec 9>"$1/.lock"
	if ! flock -n 9; then
		log "another build holds $1/.lock, waiting for it"
		flock 9
	fi
}
