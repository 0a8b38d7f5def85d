//go:build tools

// Package tools pins kube-apiserver and kubectl from k8s.io/kubernetes so that `go mod tidy` keeps them.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
