package cluster

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"
)

// Kubectl runs the kubectl of the control-plane binaries as the admin user,
// with stdin as its input (nil for none), and returns its combined output.
func (cp *ControlPlane) Kubectl(ctx context.Context, stdin []byte, args ...string) ([]byte, error) {
	bin := filepath.Join(cp.cfg.BinDir, "kubectl")
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("cluster: kubectl: %w", err)
	}
	cmd := exec.CommandContext(ctx, bin, append([]string{"--kubeconfig=" + cp.adminKubeconfig}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("cluster: kubectl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return out, nil
}

// ApplyDeploy installs the manifests of the kustomization in dir (deploy/ of
// the checkout) as an operator would with `kubectl apply -k`, except the
// DaemonSet: there is no container runtime to run its pods, and the fake
// kubelets would only report them Running with pod IPs that lead nowhere,
// which peer discovery would then try to join. The agents run as processes
// of the harness instead (see StartNode), with the same ServiceAccount, RBAC
// and configuration. Every CustomResourceDefinition in the kustomization is
// applied first and waited for until it is established.
func (cp *ControlPlane) ApplyDeploy(ctx context.Context, dir string) error {
	rendered, err := cp.Kubectl(ctx, nil, "kustomize", dir)
	if err != nil {
		return err
	}
	var crds, rest [][]byte
	var crdNames []string
	for _, doc := range splitYAML(rendered) {
		var meta struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			return fmt.Errorf("cluster: %s: %w", dir, err)
		}
		switch meta.Kind {
		case "":
		case "DaemonSet":
		case "CustomResourceDefinition":
			crds = append(crds, doc)
			crdNames = append(crdNames, "crd/"+meta.Metadata.Name)
		default:
			rest = append(rest, doc)
		}
	}
	if len(crds) > 0 {
		if _, err := cp.Kubectl(ctx, joinYAML(crds), "apply", "-f", "-"); err != nil {
			return err
		}
		args := append([]string{"wait", "--for=condition=Established", "--timeout=60s"}, crdNames...)
		if _, err := cp.Kubectl(ctx, nil, args...); err != nil {
			return err
		}
	}
	if len(rest) > 0 {
		if _, err := cp.Kubectl(ctx, joinYAML(rest), "apply", "-f", "-"); err != nil {
			return err
		}
	}
	return nil
}

// splitYAML splits a multi-document YAML stream on its "---" lines.
func splitYAML(data []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	flush := func() {
		if len(bytes.TrimSpace(cur.Bytes())) > 0 {
			docs = append(docs, append([]byte(nil), cur.Bytes()...))
		}
		cur.Reset()
	}
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		if t := bytes.TrimRight(line, " \t\r\n"); bytes.Equal(t, []byte("---")) {
			flush()
			continue
		}
		cur.Write(line)
	}
	flush()
	return docs
}

func joinYAML(docs [][]byte) []byte {
	return bytes.Join(docs, []byte("\n---\n"))
}
