// kstatus prints the kstatus result of Kubernetes objects, computed by the kstatus library that Flux and
// Helm 4 use (github.com/fluxcd/cli-utils, the fork Helm 4 links, at the version pinned in go.mod).
//
// It reads objects (YAML or JSON; `---`-separated documents, a JSON stream, or a List) from stdin and prints
// one JSON line per object: {"apiVersion","kind","namespace","name","status","message"} where status is
// Current, InProgress, Failed, Terminating or Unknown (with "error" when kstatus could not compute it).
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"cloudjob.io/tools/gitops/objects"
	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

type line struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
	Status     string `json:"status"`
	Message    string `json:"message"`
	Error      string `json:"error,omitempty"`
}

func main() {
	if len(os.Args) > 1 {
		fmt.Fprintln(os.Stderr, "usage: kstatus < objects.yaml|json")
		os.Exit(2)
	}
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, w io.Writer) error {
	out := json.NewEncoder(w)
	return objects.Each(in, func(o *unstructured.Unstructured) error {
		l := line{APIVersion: o.GetAPIVersion(), Kind: o.GetKind(), Namespace: o.GetNamespace(), Name: o.GetName()}
		res, err := status.Compute(o)
		if err != nil {
			l.Status, l.Error = status.UnknownStatus.String(), err.Error()
		} else {
			l.Status, l.Message = res.Status.String(), res.Message
		}
		return out.Encode(l)
	})
}
