//go:build !linux

package fence

import (
	"errors"
	"os"
)

// setWatchdogTimeout fails off Linux, where the watchdog ioctls are not
// known: the watchdog action needs Linux.
func setWatchdogTimeout(*os.File, int) (int, error) {
	return 0, errors.New("watchdog timeouts can be set only on Linux")
}
