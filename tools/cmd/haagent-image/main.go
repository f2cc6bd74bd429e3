// Command haagent-image builds the haagent container image from static
// binaries, offline: no container daemon, no registry. `make image` runs it.
//
//	haagent-image --binary linux/amd64=_output/bin/haagent-linux-amd64 \
//	    --binary linux/arm64=_output/bin/haagent-linux-arm64 \
//	    --version 0.1.0 --revision abc1234 --out-dir _output/image
//
// It writes, in --out-dir:
//
//	haagent-VERSION.oci.tar                   both platforms, an OCI image layout
//	haagent-VERSION-linux-ARCH.docker.tar     one platform, for `docker load`
//
// and prints each file with its size and the image digests.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/haagent/haagent/tools/ociimage"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "haagent-image:", err)
		os.Exit(1)
	}
}

// binaries is the repeatable --binary platform=path flag.
type binaries []ociimage.Binary

func (b *binaries) String() string {
	parts := make([]string, 0, len(*b))
	for _, x := range *b {
		parts = append(parts, x.Platform+"="+x.Path)
	}
	return strings.Join(parts, ",")
}

func (b *binaries) Set(s string) error {
	platform, path, ok := strings.Cut(s, "=")
	if !ok {
		return errors.New("want platform=path, e.g. linux/amd64=_output/bin/haagent-linux-amd64")
	}
	*b = append(*b, ociimage.Binary{Platform: platform, Path: path})
	return nil
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	cfg := ociimage.DefaultConfig()
	fs := flag.NewFlagSet("haagent-image", flag.ContinueOnError)
	var bins binaries
	fs.Var(&bins, "binary", "platform=path of a static haagent binary; repeat per platform (linux/amd64, linux/arm64)")
	fs.StringVar(&cfg.Version, "version", "", "release version stamped in the binaries; the image tag and org.opencontainers.image.version")
	fs.StringVar(&cfg.Revision, "revision", "", "source commit (org.opencontainers.image.revision)")
	created := fs.String("created", "", "RFC 3339 time of every file and of the image; default $SOURCE_DATE_EPOCH")
	fs.StringVar(&cfg.Source, "source", cfg.Source, "source repository URL (org.opencontainers.image.source)")
	fs.StringVar(&cfg.Licenses, "licenses", cfg.Licenses, "SPDX license expression (org.opencontainers.image.licenses)")
	fs.StringVar(&cfg.Repository, "repository", cfg.Repository, "image name without tag, used inside the archives")
	fs.StringVar(&cfg.CACertificates, "ca-certificates", cfg.CACertificates, "PEM CA bundle of this machine, copied into the image")
	fs.IntVar(&cfg.CompressionLevel, "compression-level", cfg.CompressionLevel, "gzip level of the layers, 1 (fast) to 9 (small)")
	outDir := fs.String("out-dir", "_output/image", "directory for the archives")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg.Binaries = bins
	t, err := createdTime(*created, os.Getenv("SOURCE_DATE_EPOCH"))
	if err != nil {
		return err
	}
	cfg.Created = t
	if err := cfg.Validate(); err != nil {
		return err
	}
	ref, _ := cfg.Tag() // checked by Validate

	idx, err := ociimage.Build(cfg)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	ociPath := filepath.Join(*outDir, "haagent-"+cfg.Version+".oci.tar")
	if err := ociimage.WriteOCIArchive(ociPath, ref, idx, cfg.Created); err != nil {
		return err
	}
	digest, err := idx.Digest()
	if err != nil {
		return err
	}
	if err := report(stdout, ociPath, "index "+digest.String()); err != nil {
		return err
	}
	for _, b := range cfg.Binaries {
		if err := ctx.Err(); err != nil {
			return err
		}
		path := filepath.Join(*outDir, "haagent-"+cfg.Version+"-"+strings.ReplaceAll(b.Platform, "/", "-")+".docker.tar")
		if err := ociimage.WriteDockerArchive(path, ref, idx, b.Platform); err != nil {
			return err
		}
		img, err := ociimage.PlatformImage(idx, b.Platform)
		if err != nil {
			return err
		}
		d, err := img.Digest()
		if err != nil {
			return err
		}
		if err := report(stdout, path, b.Platform+" "+d.String()); err != nil {
			return err
		}
	}
	_, err = fmt.Fprintf(stdout, "image %s, created %s\n", ref.Name(), cfg.Created.UTC().Format(time.RFC3339))
	return err
}

// createdTime takes --created, else SOURCE_DATE_EPOCH (seconds since 1970).
func createdTime(flagValue, epoch string) (time.Time, error) {
	switch {
	case flagValue != "":
		t, err := time.Parse(time.RFC3339, flagValue)
		if err != nil {
			return time.Time{}, fmt.Errorf("--created %q is not an RFC 3339 time: %w", flagValue, err)
		}
		return t, nil
	case epoch != "":
		s, err := strconv.ParseInt(epoch, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q is not a number of seconds: %w", epoch, err)
		}
		return time.Unix(s, 0), nil
	}
	return time.Time{}, nil // Validate names the flag
}

func report(w io.Writer, path, what string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%-64s %6.1f MiB  %s\n", path, float64(st.Size())/(1<<20), what)
	return err
}
