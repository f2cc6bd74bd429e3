package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// spawner starts child processes from one OS thread that it keeps locked.
//
// Pdeathsig is delivered when the thread that forked the child exits, not
// when the process does. Go may end a thread while the process lives on (a
// goroutine that exits while locked to its thread takes the thread with it),
// which would SIGKILL a healthy control plane in the middle of a test. Forking
// from a thread we own avoids that; closing the spawner ends that thread, and
// with it, as a last resort, every child it started.
type spawner struct {
	reqs chan func()
	done chan struct{}
}

func newSpawner() *spawner {
	s := &spawner{reqs: make(chan func()), done: make(chan struct{})}
	go func() {
		// Never unlocked: when this goroutine returns, the thread goes too.
		runtime.LockOSThread()
		defer close(s.done)
		for f := range s.reqs {
			f()
		}
	}()
	return s
}

func (s *spawner) start(cmd *exec.Cmd) error {
	res := make(chan error, 1)
	s.reqs <- func() { res <- cmd.Start() }
	return <-res
}

func (s *spawner) close() {
	close(s.reqs)
	<-s.done
}

// process is one running component with its log file.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string

	done    chan struct{}
	waitErr error // set before done is closed
}

// startProcess runs bin with args, stdout and stderr both going to logPath.
// The child leads a process group of its own so that Stop can kill whatever
// it forked too, and it gets SIGKILL if this test process dies first.
func startProcess(sp *spawner, name, bin string, args []string, logPath string) (*process, error) {
	return startProcessAs(sp, name, bin, args, logPath, nil, nil)
}

// startProcessAs is startProcess with the child's user and groups set by
// cred, nil keeping the test process's, and its environment set to env, nil
// keeping the test process's.
func startProcessAs(sp *spawner, name, bin string, args []string, logPath string, cred *syscall.Credential, env []string) (*process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	// The command line heads the log, so a failing run shows what was started.
	fmt.Fprintf(logFile, "# %s %s\n", bin, strings.Join(args, " "))

	cmd := exec.Command(bin, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: cred}
	if err := sp.start(cmd); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended, and how.
func (p *process) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// kill sends SIGKILL to the whole process group and waits until the process
// has been reaped, so that its PID is gone when kill returns.
func (p *process) kill(timeout time.Duration) error {
	if done, _ := p.exited(); !done {
		// Negative PID: the process group. ESRCH only means it is gone already.
		if err := syscall.Kill(-p.pid(), syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("kill %s: %w", p.name, err)
		}
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("%s (pid %d) still running %s after SIGKILL", p.name, p.pid(), timeout)
	}
}

// tailFile returns the last n lines of a file, reading at most its last 256 KiB.
func tailFile(path string, n int) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	const maxRead = 256 << 10
	info, err := f.Stat()
	if err != nil {
		return "", err
	}
	off := info.Size() - maxRead
	if off < 0 {
		off = 0
	}
	data, err := io.ReadAll(io.NewSectionReader(f, off, info.Size()-off))
	if err != nil {
		return "", err
	}
	data = bytes.TrimRight(data, "\n")
	lines := bytes.Split(data, []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n"))), nil
}

// freePorts asks the kernel for n distinct free TCP ports on 127.0.0.1. All
// listeners stay open until every port is chosen, so the ports differ. Another
// process may still take one before the component binds it; that window is
// small, and the component then exits with "address already in use" in its log.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
