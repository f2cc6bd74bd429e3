package ociimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/x509"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Where things are in the image, and who runs it.
const (
	// BinaryPath is the agent's path in the image, and the entrypoint.
	BinaryPath = "/usr/local/bin/haagent"
	// CACertificatesPath is where Go's crypto/x509 looks first on Linux.
	CACertificatesPath = "/etc/ssl/certs/ca-certificates.crt"
	// User is the nonroot user and group that the image runs as; the same
	// numbers as the distroless nonroot images and deploy/daemonset.yaml.
	User = "65532:65532"
	uid  = 65532
)

// The OCI label (and index annotation) keys the image carries.
const (
	LabelTitle       = "org.opencontainers.image.title"
	LabelDescription = "org.opencontainers.image.description"
	LabelVersion     = "org.opencontainers.image.version"
	LabelRevision    = "org.opencontainers.image.revision"
	LabelCreated     = "org.opencontainers.image.created"
	LabelSource      = "org.opencontainers.image.source"
	LabelLicenses    = "org.opencontainers.image.licenses"
)

// Description is the image's org.opencontainers.image.description.
const Description = "haagent: fast, safe failover of dead Kubernetes nodes (DaemonSet agent)"

// Binary is one static haagent binary and the platform it was built for.
type Binary struct {
	// Platform is the OS and architecture, "linux/amd64" or "linux/arm64".
	Platform string
	// Path is the binary on disk. It must be a static ELF executable
	// (CGO_ENABLED=0) for Platform: the base has no C library.
	Path string
}

// Config says what goes into the image.
type Config struct {
	// Binaries holds one binary per platform; the index lists the platforms
	// in this order.
	Binaries []Binary
	// Version is the release version, as stamped into the binary. It is the
	// org.opencontainers.image.version label and the image tag, so it must
	// be a valid tag (letters, digits, '.', '_', '-').
	Version string
	// Revision is the source commit (org.opencontainers.image.revision).
	Revision string
	// Created is the time of every file, config and history entry, and the
	// org.opencontainers.image.created label. The commit time keeps builds
	// reproducible; the wall clock makes each build differ.
	Created time.Time
	// Source is the URL of the source repository
	// (org.opencontainers.image.source).
	Source string
	// Licenses is an SPDX license expression
	// (org.opencontainers.image.licenses).
	Licenses string
	// Repository is the name the image is published under, without a tag;
	// with Version it names the image inside the archives.
	Repository string
	// CACertificates is a PEM bundle on the build machine, copied to
	// CACertificatesPath so that the agent can verify TLS peers.
	CACertificates string
	// CompressionLevel is the gzip level of the layers (1 fastest, 9
	// smallest). Higher levels cost build time once and save pull time on
	// every node.
	CompressionLevel int
}

// License is the SPDX identifier of haagent's license, the file LICENSE at
// the repository root: the default of Config.Licenses.
const License = "Apache-2.0"

// DefaultConfig returns the settings of a haagent release, without the
// binaries, the version, the revision and the creation time, which belong to
// each build.
func DefaultConfig() Config {
	return Config{
		Source:           "https://github.com/haagent/haagent",
		Licenses:         License,
		Repository:       "ghcr.io/haagent/haagent",
		CACertificates:   "/etc/ssl/certs/ca-certificates.crt",
		CompressionLevel: gzip.BestCompression,
	}
}

// Validate checks the config without reading any file.
func (c Config) Validate() error {
	var errs []error
	if len(c.Binaries) == 0 {
		errs = append(errs, errors.New("ociimage: --binary: at least one platform=path is required"))
	}
	seen := map[string]bool{}
	for _, b := range c.Binaries {
		if _, err := parsePlatform(b.Platform); err != nil {
			errs = append(errs, err)
		}
		if seen[b.Platform] {
			errs = append(errs, fmt.Errorf("ociimage: --binary: platform %q given twice", b.Platform))
		}
		seen[b.Platform] = true
		if b.Path == "" {
			errs = append(errs, fmt.Errorf("ociimage: --binary: no path for platform %q", b.Platform))
		}
	}
	if c.Version == "" {
		errs = append(errs, errors.New("ociimage: --version must not be empty"))
	} else if _, err := c.Tag(); err != nil {
		errs = append(errs, fmt.Errorf("ociimage: --version %q with --repository %q is not a valid image reference: %w", c.Version, c.Repository, err))
	}
	if c.Revision == "" {
		errs = append(errs, errors.New("ociimage: --revision must not be empty"))
	}
	if c.Created.IsZero() {
		errs = append(errs, errors.New("ociimage: --created must be set (or SOURCE_DATE_EPOCH)"))
	}
	if c.Source == "" {
		errs = append(errs, errors.New("ociimage: --source must not be empty"))
	}
	if c.Licenses == "" {
		errs = append(errs, errors.New("ociimage: --licenses must not be empty (NOASSERTION if unknown)"))
	}
	if c.CACertificates == "" {
		errs = append(errs, errors.New("ociimage: --ca-certificates must not be empty"))
	}
	if c.CompressionLevel < gzip.BestSpeed || c.CompressionLevel > gzip.BestCompression {
		errs = append(errs, fmt.Errorf("ociimage: --compression-level (%d) must be between %d and %d", c.CompressionLevel, gzip.BestSpeed, gzip.BestCompression))
	}
	return errors.Join(errs...)
}

// Tag is the reference the archives name the image by: Repository:Version.
func (c Config) Tag() (name.Tag, error) {
	return name.NewTag(c.Repository+":"+c.Version, name.StrictValidation)
}

// Labels are the OCI labels of the image config, also set as annotations of
// the index.
func (c Config) Labels() map[string]string {
	return map[string]string{
		LabelTitle:       "haagent",
		LabelDescription: Description,
		LabelVersion:     c.Version,
		LabelRevision:    c.Revision,
		LabelCreated:     c.Created.UTC().Format(time.RFC3339),
		LabelSource:      c.Source,
		LabelLicenses:    c.Licenses,
	}
}

// Build makes the image index, one image per binary. It reads the CA bundle
// and the binaries, and checks that each binary is a static executable for
// its platform.
func Build(c Config) (v1.ImageIndex, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	pem, err := os.ReadFile(c.CACertificates)
	if err != nil {
		return nil, fmt.Errorf("ociimage: --ca-certificates: the CA bundle is needed so that the agent can verify TLS peers (on Debian: apt-get install ca-certificates): %w", err)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("ociimage: --ca-certificates: %s holds no PEM certificate", c.CACertificates)
	}
	base, err := c.layer(baseFiles(pem))
	if err != nil {
		return nil, fmt.Errorf("ociimage: base layer: %w", err)
	}

	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, b := range c.Binaries {
		p, _ := parsePlatform(b.Platform) // checked by Validate
		img, err := c.image(p, b.Path, base)
		if err != nil {
			return nil, err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &p},
		})
	}
	annotated, ok := mutate.Annotations(idx, c.Labels()).(v1.ImageIndex)
	if !ok {
		return nil, errors.New("ociimage: annotating the index did not return an index")
	}
	return annotated, nil
}

// image is one platform's image: the base layer, then the binary.
func (c Config) image(p v1.Platform, path string, base v1.Layer) (v1.Image, error) {
	bin, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ociimage: --binary %s: %w", p.String(), err)
	}
	if err := checkStatic(bin, p); err != nil {
		return nil, fmt.Errorf("ociimage: --binary %s=%s: %w", p.String(), path, err)
	}
	binLayer, err := c.layer([]entry{
		dir("usr/", 0o755, 0), dir("usr/local/", 0o755, 0), dir("usr/local/bin/", 0o755, 0),
		file(strings.TrimPrefix(BinaryPath, "/"), 0o755, bin),
	})
	if err != nil {
		return nil, fmt.Errorf("ociimage: binary layer of %s: %w", p.String(), err)
	}

	created := v1.Time{Time: c.Created.UTC()}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.ConfigFile(img, &v1.ConfigFile{
		Architecture: p.Architecture,
		OS:           p.OS,
		Variant:      p.Variant,
		Created:      created,
		Config: v1.Config{
			Entrypoint: []string{BinaryPath},
			Cmd:        []string{"run"},
			User:       User,
			Env:        []string{"PATH=/usr/local/bin"},
			WorkingDir: "/",
			Labels:     c.Labels(),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("ociimage: config of %s: %w", p.String(), err)
	}
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, MediaType: types.OCILayer, History: v1.History{
			Created: created, CreatedBy: "haagent-image: nonroot user 65532, CA certificates", Comment: "base",
		}},
		mutate.Addendum{Layer: binLayer, MediaType: types.OCILayer, History: v1.History{
			Created: created, CreatedBy: "haagent-image: " + BinaryPath, Comment: "haagent " + c.Version,
		}},
	)
	if err != nil {
		return nil, fmt.Errorf("ociimage: layers of %s: %w", p.String(), err)
	}
	return img, nil
}

// parsePlatform accepts the two platforms that haagent ships.
func parsePlatform(s string) (v1.Platform, error) {
	switch s {
	case "linux/amd64", "linux/arm64":
		goos, arch, _ := strings.Cut(s, "/")
		return v1.Platform{OS: goos, Architecture: arch}, nil
	}
	return v1.Platform{}, fmt.Errorf("ociimage: --binary: platform %q is not linux/amd64 or linux/arm64", s)
}

// checkStatic refuses a binary for the wrong architecture or one that needs
// a dynamic loader, which the empty base does not have.
func checkStatic(bin []byte, p v1.Platform) error {
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		return fmt.Errorf("not an ELF executable: %w", err)
	}
	defer f.Close()
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[p.Architecture]
	if f.Machine != want {
		return fmt.Errorf("built for %s, not %s", f.Machine, p.Architecture)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return errors.New("dynamically linked (build it with CGO_ENABLED=0)")
		}
	}
	return nil
}

// entry is one file or directory of a layer.
type entry struct {
	name string
	mode int64
	uid  int
	dir  bool
	data []byte
}

func dir(name string, mode int64, owner int) entry {
	return entry{name: name, mode: mode, uid: owner, dir: true}
}

func file(name string, mode int64, data []byte) entry {
	return entry{name: name, mode: mode, data: data}
}

// baseFiles is the content of the base layer: what a static Go program
// needs from a root file system, and nothing to log in with.
func baseFiles(caPEM []byte) []entry {
	return []entry{
		dir("etc/", 0o755, 0),
		file("etc/passwd", 0o644, []byte(
			"root:x:0:0:root:/root:/sbin/nologin\n"+
				"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")),
		file("etc/group", 0o644, []byte("root:x:0:\nnonroot:x:65532:\n")),
		file("etc/nsswitch.conf", 0o644, []byte("hosts: files dns\n")),
		dir("etc/ssl/", 0o755, 0),
		dir("etc/ssl/certs/", 0o755, 0),
		file(strings.TrimPrefix(CACertificatesPath, "/"), 0o644, caPEM),
		dir("home/", 0o755, 0),
		dir("home/nonroot/", 0o700, uid),
		dir("tmp/", 0o1777, 0),
	}
}

// layer writes the entries as a tar, in order, every header with the same
// time and numeric owners only, so that equal input gives an equal digest.
func (c Config) layer(entries []entry) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{
			Name:    e.name,
			Mode:    e.mode,
			Uid:     e.uid,
			Gid:     e.uid,
			ModTime: c.Created.UTC(),
		}
		if e.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	raw := buf.Bytes()
	return tarball.LayerFromOpener(
		func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil },
		tarball.WithMediaType(types.OCILayer),
		tarball.WithCompressionLevel(c.CompressionLevel),
		tarball.WithCompressedCaching,
	)
}
