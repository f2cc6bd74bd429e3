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
