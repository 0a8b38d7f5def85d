//go:build tools

// Package tools pins the Kubernetes binaries the tests build from k8s.io/kubernetes so that `go mod tidy`
// keeps them: kube-apiserver and kubectl for the control plane, and kube-scheduler, kube-controller-manager
// and kubelet for the optional local node (`build.sh --node`).
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
