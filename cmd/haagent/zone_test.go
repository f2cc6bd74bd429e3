package main

import (
	"testing"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

type nodeMap map[string]*corev1.Node

func (m nodeMap) Get(name string) (*corev1.Node, bool) { n, ok := m[name]; return n, ok }

func TestZoneFromNode(t *testing.T) {
	nodes := nodeMap{
		"a": {ObjectMeta: metav1.ObjectMeta{Name: "a", Labels: map[string]string{corev1.LabelTopologyZone: "eu-1b"}}},
		"b": {ObjectMeta: metav1.ObjectMeta{Name: "b"}},
	}
	for node, want := range map[string]string{"a": "eu-1b", "b": "", "missing": ""} {
		if got := zoneFromNode(nodes, node, zap.NewNop()); got != want {
			t.Errorf("zoneFromNode(%q) = %q, want %q", node, got, want)
		}
	}
}
