package main

import (
	"context"
	"testing"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestZoneFromNode(t *testing.T) {
	client := fake.NewClientset(
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "a", Labels: map[string]string{corev1.LabelTopologyZone: "eu-1b"}}},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "b"}},
	)
	for node, want := range map[string]string{"a": "eu-1b", "b": "", "missing": ""} {
		if got := zoneFromNode(context.Background(), client, node, zap.NewNop()); got != want {
			t.Errorf("zoneFromNode(%q) = %q, want %q", node, got, want)
		}
	}
}
