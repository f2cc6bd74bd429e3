//go:build linux

package fence

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// setWatchdogTimeout asks the watchdog for a timeout in seconds and returns
// the one it reports back: drivers round to what the hardware supports.
func setWatchdogTimeout(dog *os.File, seconds int) (int, error) {
	rc, err := dog.SyscallConn()
	if err != nil {
		return 0, err
	}
	var got int
	var ioctlErr error
	err = rc.Control(func(fd uintptr) {
		if err := unix.IoctlSetPointerInt(int(fd), unix.WDIOC_SETTIMEOUT, seconds); err != nil {
			ioctlErr = fmt.Errorf("WDIOC_SETTIMEOUT: %w", err)
			return
		}
		if got, err = unix.IoctlGetInt(int(fd), unix.WDIOC_GETTIMEOUT); err != nil {
			ioctlErr = fmt.Errorf("WDIOC_GETTIMEOUT: %w", err)
		}
	})
	if err != nil {
		return 0, err
	}
	return got, ioctlErr
}
