// Package logging builds the agent's zap logger from its flags and routes
// client-go's klog output into it, so that one process writes one log
// format.
package logging

import (
	"flag"
	"fmt"

	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"k8s.io/klog/v2"
)

// Config selects the log format and level.
type Config struct {
	// Format is "json" (default; for log collectors) or "console" (for
	// people at a terminal).
	Format string
	// Level is the lowest level written: debug, info, warn or error.
	Level string
}

// DefaultConfig logs JSON at info.
func DefaultConfig() Config { return Config{Format: "json", Level: "info"} }

// RegisterFlags binds --log-format and --log-level.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Format, "log-format", c.Format, "log format: json or console")
	fs.StringVar(&c.Level, "log-level", c.Level, "lowest log level: debug, info, warn or error")
}

// Validate names the flag and the allowed values.
func (c Config) Validate() error {
	if c.Format != "json" && c.Format != "console" {
		return fmt.Errorf("logging: --log-format (%q) must be json or console", c.Format)
	}
	switch c.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("logging: --log-level (%q) must be one of debug, info, warn, error", c.Level)
	}
	return nil
}

// New builds the logger. It writes to standard error.
func New(c Config) (*zap.Logger, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var zc zap.Config
	if c.Format == "console" {
		zc = zap.NewDevelopmentConfig()
		zc.EncoderConfig.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05.000")
		zc.Development = false
	} else {
		zc = zap.NewProductionConfig()
		zc.EncoderConfig.TimeKey = "ts"
		zc.EncoderConfig.EncodeTime = zapcore.RFC3339NanoTimeEncoder
		// Every line matters when reconstructing a failover.
		zc.Sampling = nil
	}
	lvl, err := zapcore.ParseLevel(c.Level)
	if err != nil {
		return nil, fmt.Errorf("logging: --log-level: %w", err)
	}
	zc.Level = zap.NewAtomicLevelAt(lvl)
	zc.DisableStacktrace = true
	return zc.Build()
}

// RouteKlog sends klog (client-go, leader election) through the logger.
// klog is process-wide, so only the binary's main calls this.
func RouteKlog(l *zap.Logger) {
	klog.SetLogger(zapr.NewLogger(l.Named("klog")))
}
