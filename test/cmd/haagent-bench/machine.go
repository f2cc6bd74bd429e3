package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// readMachine describes this machine from /proc; what cannot be read stays
// empty.
func readMachine() Machine {
	var m Machine
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.CPU, m.Cores = parseCPUInfo(string(data))
	}
	if m.Cores == 0 {
		m.Cores = runtime.NumCPU()
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		m.MemoryMiB = parseMemTotal(string(data))
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(data))
	}
	return m
}

// parseCPUInfo returns the first model name and the number of processors.
func parseCPUInfo(s string) (string, int) {
	model, n := "", 0
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(key) {
		case "processor":
			n++
		case "model name":
			if model == "" {
				model = strings.Join(strings.Fields(val), " ")
			}
		}
	}
	return model, n
}

// parseMemTotal returns MemTotal in MiB.
func parseMemTotal(s string) int {
	for line := range strings.Lines(s) {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			if err == nil {
				return kb / 1024
			}
		}
	}
	return 0
}

// readVersions asks the binaries for their versions.
func readVersions(ctx context.Context, binDir, haagent string) Versions {
	v := Versions{Go: runtime.Version()}
	first := func(bin string, args ...string) string {
		// Generous: on a busy machine a large binary takes seconds to start.
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
		if err != nil {
			return ""
		}
		line, _, _ := strings.Cut(string(out), "\n")
		return strings.TrimSpace(line)
	}
	v.Kubernetes = strings.TrimPrefix(first(filepath.Join(binDir, "kube-apiserver"), "--version"), "Kubernetes ")
	v.Etcd = strings.TrimPrefix(first(filepath.Join(binDir, "etcd"), "--version"), "etcd Version: ")
	if haagent != "" {
		v.Haagent = strings.TrimPrefix(first(haagent, "version"), "haagent ")
	}
	return v
}
