package ociimage_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/haagent/haagent/tools/ociimage"
)

const (
	testVersion   = "9.8.7-test"
	testRevision  = "abc1234"
	testBuildDate = "2026-01-02T03:04:05Z"
)

var testCreated = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// TestImage_haagent builds the real agent for this machine (and a stand-in
// for the other platform), makes the image archive, opens it again and runs
// the agent found in the layers.
func TestImage_haagent(t *testing.T) {
	if runtime.GOOS != "linux" || (runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64") {
		t.Skipf("the image holds linux/amd64 and linux/arm64 binaries; this is %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	host := "linux/" + runtime.GOARCH
	other := map[string]string{"amd64": "linux/arm64", "arm64": "linux/amd64"}[runtime.GOARCH]
	dir := t.TempDir()

	agent := buildAgent(t, dir)
	standIn := buildStandIn(t, dir, other)
	caPEM := selfSignedPEM(t)
	caPath := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(caPath, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}

	cfg := ociimage.DefaultConfig()
	cfg.Binaries = []ociimage.Binary{{Platform: host, Path: agent}, {Platform: other, Path: standIn}}
	cfg.Version = testVersion
	cfg.Revision = testRevision
	cfg.Created = testCreated
	cfg.CACertificates = caPath
	cfg.CompressionLevel = gzip.BestSpeed // the test runs under -race
	ref, err := cfg.Tag()
	if err != nil {
		t.Fatal(err)
	}
	idx, err := ociimage.Build(cfg)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	archive := filepath.Join(dir, "haagent.oci.tar")
	if err := ociimage.WriteOCIArchive(archive, ref, idx, cfg.Created); err != nil {
		t.Fatalf("WriteOCIArchive: %v", err)
	}

	// Open the archive as a user would: untar, read the OCI layout.
	layoutDir := filepath.Join(dir, "layout")
	untar(t, archive, layoutDir)
	top, err := layout.ImageIndexFromPath(layoutDir)
	if err != nil {
		t.Fatalf("reading the OCI layout: %v", err)
	}
	topManifest, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(topManifest.Manifests) != 1 {
		t.Fatalf("index.json lists %d entries, want 1 (the multi-platform index)", len(topManifest.Manifests))
	}
	entry := topManifest.Manifests[0]
	if entry.MediaType != types.OCIImageIndex {
		t.Errorf("index.json entry media type %s, want %s", entry.MediaType, types.OCIImageIndex)
	}
	if got := entry.Annotations["org.opencontainers.image.ref.name"]; got != testVersion {
		t.Errorf("ref.name annotation %q, want %q", got, testVersion)
	}
	if got, want := entry.Annotations["io.containerd.image.name"], "ghcr.io/haagent/haagent:"+testVersion; got != want {
		t.Errorf("io.containerd.image.name annotation %q, want %q", got, want)
	}
	multi, err := top.ImageIndex(entry.Digest)
	if err != nil {
		t.Fatal(err)
	}
	mm, err := multi.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var platforms []string
	for _, m := range mm.Manifests {
		if m.Platform == nil {
			t.Fatalf("manifest %s has no platform", m.Digest)
		}
		platforms = append(platforms, m.Platform.String())
	}
	if want := []string{host, other}; !reflect.DeepEqual(platforms, want) {
		t.Errorf("platforms %v, want %v", platforms, want)
	}
	wantLabels := map[string]string{
		"org.opencontainers.image.title":       "haagent",
		"org.opencontainers.image.description": ociimage.Description,
		"org.opencontainers.image.version":     testVersion,
		"org.opencontainers.image.revision":    testRevision,
		"org.opencontainers.image.created":     testBuildDate,
		"org.opencontainers.image.source":      "https://github.com/haagent/haagent",
		"org.opencontainers.image.licenses":    "Apache-2.0",
	}
	if !reflect.DeepEqual(mm.Annotations, wantLabels) {
		t.Errorf("index annotations\n got %v\nwant %v", mm.Annotations, wantLabels)
	}

	for _, p := range []string{host, other} {
		img, err := ociimage.PlatformImage(multi, p)
		if err != nil {
			t.Fatal(err)
		}
		checkConfig(t, img, p, wantLabels)
	}

	// The host's image: its files, then the agent itself.
	img, err := ociimage.PlatformImage(multi, host)
	if err != nil {
		t.Fatal(err)
	}
	files := extract(t, img)
	passwd := string(files["etc/passwd"].data)
	if !strings.Contains(passwd, "nonroot:x:65532:65532:") {
		t.Errorf("/etc/passwd has no nonroot user 65532:\n%s", passwd)
	}
	if strings.Contains(passwd, "/bin/sh") || strings.Contains(passwd, "/bin/bash") {
		t.Errorf("/etc/passwd gives a login shell:\n%s", passwd)
	}
	if !strings.Contains(string(files["etc/group"].data), "nonroot:x:65532:") {
		t.Errorf("/etc/group has no nonroot group 65532")
	}
	if !bytes.Equal(files["etc/ssl/certs/ca-certificates.crt"].data, caPEM) {
		t.Errorf("/etc/ssl/certs/ca-certificates.crt is not the given CA bundle")
	}
	for _, shell := range []string{"bin/sh", "bin/bash", "bin/busybox"} {
		if _, ok := files[shell]; ok {
			t.Errorf("the image has a shell: /%s", shell)
		}
	}
	bin, ok := files["usr/local/bin/haagent"]
	if !ok {
		t.Fatalf("no /usr/local/bin/haagent in the image; files: %v", names(files))
	}
	if bin.mode != 0o755 || bin.uid != 0 || !bin.modTime.Equal(testCreated) {
		t.Errorf("/usr/local/bin/haagent: mode %o uid %d time %s, want 755, 0, %s", bin.mode, bin.uid, bin.modTime, testCreated)
	}
	extracted := filepath.Join(dir, "extracted-haagent")
	if err := os.WriteFile(extracted, bin.data, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(extracted, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("haagent version from the image: %v\n%s", err, out)
	}
	wantPrefix := "haagent " + testVersion + " (commit " + testRevision + ", built " + testBuildDate + ", go"
	if !strings.HasPrefix(string(out), wantPrefix) {
		t.Errorf("haagent version printed %q, want it to start with %q", out, wantPrefix)
	}

	// The docker-load archive of the other platform holds the same config
	// and layers.
	dockerTar := filepath.Join(dir, "other.docker.tar")
	if err := ociimage.WriteDockerArchive(dockerTar, ref, idx, other); err != nil {
		t.Fatalf("WriteDockerArchive: %v", err)
	}
	loaded, err := tarball.ImageFromPath(dockerTar, &ref)
	if err != nil {
		t.Fatalf("reading the docker archive: %v", err)
	}
	orig, err := ociimage.PlatformImage(idx, other)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := configName(t, loaded), configName(t, orig); got != want {
		t.Errorf("docker archive config %s, want %s", got, want)
	}

	// The same inputs give the same bytes.
	idx2, err := ociimage.Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	archive2 := filepath.Join(dir, "again.oci.tar")
	if err := ociimage.WriteOCIArchive(archive2, ref, idx2, cfg.Created); err != nil {
		t.Fatal(err)
	}
	if !sameFile(t, archive, archive2) {
		t.Errorf("two builds from the same inputs differ")
	}

	t.Run("wrong architecture", func(t *testing.T) {
		bad := cfg
		bad.Binaries = []ociimage.Binary{{Platform: host, Path: standIn}}
		_, err := ociimage.Build(bad)
		if err == nil || !strings.Contains(err.Error(), "not "+runtime.GOARCH) {
			t.Errorf("Build with a %s binary for %s: err %v, want it refused", other, host, err)
		}
	})
	t.Run("no CA bundle", func(t *testing.T) {
		bad := cfg
		bad.CACertificates = filepath.Join(dir, "missing.crt")
		_, err := ociimage.Build(bad)
		if err == nil || !strings.Contains(err.Error(), "--ca-certificates") || !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Build without a CA bundle: err %v, want a --ca-certificates not-exist error", err)
		}
	})
}

func TestConfig_Validate(t *testing.T) {
	valid := func() ociimage.Config {
		c := ociimage.DefaultConfig()
		c.Binaries = []ociimage.Binary{{Platform: "linux/amd64", Path: "a"}, {Platform: "linux/arm64", Path: "b"}}
		c.Version = "0.1.0"
		c.Revision = "abc1234"
		c.Created = testCreated
		return c
	}
	tests := []struct {
		name   string
		modify func(*ociimage.Config)
		want   string
	}{
		{"valid", func(*ociimage.Config) {}, ""},
		{"no binaries", func(c *ociimage.Config) { c.Binaries = nil },
			"ociimage: --binary: at least one platform=path is required"},
		{"unknown platform", func(c *ociimage.Config) { c.Binaries[1].Platform = "linux/riscv64" },
			`ociimage: --binary: platform "linux/riscv64" is not linux/amd64 or linux/arm64`},
		{"platform twice", func(c *ociimage.Config) { c.Binaries[1].Platform = "linux/amd64" },
			`ociimage: --binary: platform "linux/amd64" given twice`},
		{"no path", func(c *ociimage.Config) { c.Binaries[0].Path = "" },
			`ociimage: --binary: no path for platform "linux/amd64"`},
		{"no version", func(c *ociimage.Config) { c.Version = "" },
			"ociimage: --version must not be empty"},
		{"version not a tag", func(c *ociimage.Config) { c.Version = "0.1.0+abc" },
			`ociimage: --version "0.1.0+abc" with --repository "ghcr.io/haagent/haagent" is not a valid image reference`},
		{"no revision", func(c *ociimage.Config) { c.Revision = "" },
			"ociimage: --revision must not be empty"},
		{"no time", func(c *ociimage.Config) { c.Created = time.Time{} },
			"ociimage: --created must be set (or SOURCE_DATE_EPOCH)"},
		{"compression", func(c *ociimage.Config) { c.CompressionLevel = 0 },
			"ociimage: --compression-level (0) must be between 1 and 9"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.modify(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate: %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)):
				t.Errorf("Validate: %v, want %q", err, tc.want)
			}
		})
	}
}

func checkConfig(t *testing.T, img v1.Image, platform string, wantLabels map[string]string) {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := cf.OS + "/" + cf.Architecture; got != platform {
		t.Errorf("%s: config platform %s", platform, got)
	}
	if want := []string{"/usr/local/bin/haagent"}; !reflect.DeepEqual(cf.Config.Entrypoint, want) {
		t.Errorf("%s: entrypoint %q, want %q", platform, cf.Config.Entrypoint, want)
	}
	if want := []string{"run"}; !reflect.DeepEqual(cf.Config.Cmd, want) {
		t.Errorf("%s: cmd %q, want %q", platform, cf.Config.Cmd, want)
	}
	if cf.Config.User != "65532:65532" {
		t.Errorf("%s: user %q, want 65532:65532", platform, cf.Config.User)
	}
	if !reflect.DeepEqual(cf.Config.Labels, wantLabels) {
		t.Errorf("%s: labels\n got %v\nwant %v", platform, cf.Config.Labels, wantLabels)
	}
	if !cf.Created.Equal(testCreated) {
		t.Errorf("%s: created %s, want %s", platform, cf.Created.Time, testCreated)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON {
		t.Errorf("%s: media types %s, %s; want OCI", platform, m.MediaType, m.Config.MediaType)
	}
	if len(m.Layers) != 2 {
		t.Fatalf("%s: %d layers, want 2 (base, binary)", platform, len(m.Layers))
	}
	for _, l := range m.Layers {
		if l.MediaType != types.OCILayer {
			t.Errorf("%s: layer media type %s, want %s", platform, l.MediaType, types.OCILayer)
		}
	}
}

// buildAgent builds cmd/haagent of the main module the way make image does,
// for this machine, with a known stamp.
func buildAgent(t *testing.T, dir string) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if mod, err := os.ReadFile(filepath.Join(root, "go.mod")); err != nil || !bytes.HasPrefix(mod, []byte("module github.com/haagent/haagent\n")) {
		t.Fatalf("%s is not the haagent module root: %v", root, err)
	}
	pkg := "github.com/haagent/haagent/internal/version"
	out := filepath.Join(dir, "haagent")
	goBuild(t, root, runtime.GOARCH, out, "-ldflags",
		"-s -w -X "+pkg+".Version="+testVersion+" -X "+pkg+".Commit="+testRevision+" -X "+pkg+".BuildDate="+testBuildDate,
		"./cmd/haagent")
	return out
}

// buildStandIn builds a small static program for the other platform, to
// stand for its agent: the test checks that platform's config, not its run.
func buildStandIn(t *testing.T, dir, platform string) string {
	t.Helper()
	src := filepath.Join(dir, "standin")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(src, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module standin\n\ngo 1.26\n")
	write("main.go", "package main\n\nfunc main() { println(\"stand-in\") }\n")
	out := filepath.Join(dir, "standin-"+path.Base(platform))
	goBuild(t, src, path.Base(platform), out, ".")
	return out
}

func goBuild(t *testing.T, dir, arch, out string, args ...string) {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build the binaries: %v", err)
	}
	cmd := exec.Command(goBin, append([]string{"build", "-trimpath", "-o", out}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch, "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build in %s for linux/%s: %v\n%s", dir, arch, err, b)
	}
}

func selfSignedPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "haagent test CA"},
		NotBefore:             testCreated,
		NotAfter:              testCreated.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// untar unpacks the archive (regular files and directories only).
func untar(t *testing.T, archive, dst string) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dst, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(p, dst+string(filepath.Separator)) {
			t.Fatalf("archive entry %q leaves the directory", h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(p, 0o755)
		case tar.TypeReg:
			if err = os.MkdirAll(filepath.Dir(p), 0o755); err == nil {
				var b []byte
				if b, err = io.ReadAll(tr); err == nil {
					err = os.WriteFile(p, b, 0o644)
				}
			}
		default:
			t.Fatalf("archive entry %q has type %c", h.Name, h.Typeflag)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

type fileInfo struct {
	data    []byte
	mode    int64
	uid     int
	modTime time.Time
}

// extract reads the flattened file system of img.
func extract(t *testing.T, img v1.Image) map[string]fileInfo {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	files := map[string]fileInfo{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[strings.TrimSuffix(h.Name, "/")] = fileInfo{data: b, mode: h.Mode, uid: h.Uid, modTime: h.ModTime}
	}
}

func names(files map[string]fileInfo) []string {
	var n []string
	for k := range files {
		n = append(n, k)
	}
	return n
}

func configName(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	h, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func sameFile(t *testing.T, a, b string) bool {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(x, y)
}

// The image's license label names the license of the repository's LICENSE
// file.
func TestLicense_isTheRepositoryLicense(t *testing.T) {
	data, err := os.ReadFile("../../LICENSE")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	if ociimage.License != "Apache-2.0" || !strings.Contains(text, "Apache License") || !strings.Contains(text, "Version 2.0, January 2004") ||
		!strings.Contains(text, "END OF TERMS AND CONDITIONS") {
		t.Errorf("ociimage.License is %q, but LICENSE is not the full Apache License 2.0 text", ociimage.License)
	}
	if got := ociimage.DefaultConfig().Licenses; got != ociimage.License {
		t.Errorf("DefaultConfig().Licenses = %q, want %q", got, ociimage.License)
	}
}
