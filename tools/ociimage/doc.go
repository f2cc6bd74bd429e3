// Package ociimage builds the haagent container image without a container
// daemon or a registry: the static haagent binaries of each platform go, as
// layers, onto an empty base, and the result is written as files.
//
// Each platform's image has two layers:
//   - the base: /etc/passwd and /etc/group with the nonroot user and group
//     65532, /etc/nsswitch.conf, the CA bundle at
//     /etc/ssl/certs/ca-certificates.crt, /tmp and /home/nonroot; no shell,
//     no package manager;
//   - the binary at /usr/local/bin/haagent.
//
// The config runs `haagent run` as 65532:65532 and carries the
// org.opencontainers.image.* labels. Every timestamp (files, config, history)
// is Config.Created, so the same inputs give byte-identical images: pass the
// commit time (or SOURCE_DATE_EPOCH) to make a build reproducible.
//
// Build returns the multi-platform index; WriteOCIArchive writes it as a tar of
// an OCI image layout (for skopeo, crane, podman, containerd and Docker 25 or
// later); WriteDockerArchive writes one platform in the `docker load` format
// that older Docker daemons read.
//
// The package reads only the files named in its Config and writes only the
// paths given to its Write functions.
package ociimage
