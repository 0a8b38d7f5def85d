// kstatus prints the kstatus result of Kubernetes objects, computed by the kstatus library that Flux and
// Helm 4 use (github.com/fluxcd/cli-utils, the fork Helm 4 links, at the version pinned in go.mod).
//
// It reads objects (YAML or JSON; `---`-separated documents, a JSON stream, or a List) from stdin and prints
// one JSON line per object: {"apiVersion","kind","namespace","name","status","message"} where status is
// Current, InProgress, Failed, Terminating or Unknown (with "error" when kstatus could not compute it).
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
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
	dec := utilyaml.NewYAMLOrJSONDecoder(bufio.NewReader(in), 4096)
	for {
		// As JSON into Unstructured, as client-go decodes objects: integers stay int64 (kstatus and
		// Argo CD read metadata.generation as int64).
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(raw); err != nil {
			return err
		}
		objs := []unstructured.Unstructured{*u}
		if u.IsList() {
			list, err := u.ToList()
			if err != nil {
				return err
			}
			objs = list.Items
		}
		for i := range objs {
			o := &objs[i]
			l := line{APIVersion: o.GetAPIVersion(), Kind: o.GetKind(), Namespace: o.GetNamespace(), Name: o.GetName()}
			res, err := status.Compute(o)
			if err != nil {
				l.Status, l.Error = status.UnknownStatus.String(), err.Error()
			} else {
				l.Status, l.Message = res.Status.String(), res.Message
			}
			if err := out.Encode(l); err != nil {
				return err
			}
		}
	}
}
