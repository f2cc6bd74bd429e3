package ociimage

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Annotations of the index.json entry of an OCI archive: the OCI ref name is
// the tag, and containerd (and so Docker) names the loaded image after the
// containerd one.
const (
	annotationRefName        = "org.opencontainers.image.ref.name"
	annotationContainerdName = "io.containerd.image.name"
)

// WriteOCIArchive writes idx to path as a tar of an OCI image layout whose
// index.json names idx by ref. Entries are sorted and stamped with mtime, so
// equal images give equal archives.
func WriteOCIArchive(path string, ref name.Tag, idx v1.ImageIndex, mtime time.Time) error {
	dir, err := os.MkdirTemp(filepath.Dir(path), ".oci-layout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("ociimage: OCI layout: %w", err)
	}
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		annotationRefName:        ref.TagStr(),
		annotationContainerdName: ref.Name(),
	})); err != nil {
		return fmt.Errorf("ociimage: OCI layout: %w", err)
	}
	return writeFile(path, func(w io.Writer) error { return tarDir(w, dir, mtime) })
}

// WriteDockerArchive writes the image of one platform of idx to path in the
// format that `docker load` reads, tagged ref.
func WriteDockerArchive(path string, ref name.Tag, idx v1.ImageIndex, platform string) error {
	img, err := PlatformImage(idx, platform)
	if err != nil {
		return err
	}
	return writeFile(path, func(w io.Writer) error { return tarball.Write(ref, img, w) })
}

// PlatformImage returns the image of platform ("linux/arm64") in idx.
func PlatformImage(idx v1.ImageIndex, platform string) (v1.Image, error) {
	want, err := v1.ParsePlatform(platform)
	if err != nil {
		return nil, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, d := range im.Manifests {
		if d.Platform != nil && d.Platform.Satisfies(*want) {
			return idx.Image(d.Digest)
		}
	}
	return nil, fmt.Errorf("ociimage: the index has no image for %s", platform)
}

// writeFile writes through a temporary file in the same directory, so that
// path is either the old file or the whole new one.
func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("ociimage: writing %s: %w", path, err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// tarDir writes the tree under root as a tar: lexical order, numeric owner
// 0, fixed modes and mtime.
func tarDir(w io.Writer, root string, mtime time.Time) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == root {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		h := &tar.Header{Name: filepath.ToSlash(rel), ModTime: mtime.UTC(), Mode: 0o644, Typeflag: tar.TypeReg}
		switch {
		case d.IsDir():
			h.Name += "/"
			h.Mode = 0o755
			h.Typeflag = tar.TypeDir
			return tw.WriteHeader(h)
		case !d.Type().IsRegular():
			return fmt.Errorf("%s is not a regular file", rel)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		h.Size = info.Size()
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	return errors.Join(err, tw.Close())
}
