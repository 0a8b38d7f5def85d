// Package objects reads the Kubernetes objects that the GitOps tools (kstatus, argocd-lua) take on stdin:
// YAML or JSON, as `---`-separated documents or a JSON stream, each document an object or a List.
package objects

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// Each hands every object read from in to fn, in order (a List's items one by one), and stops at the end of
// the input or at the first error, which it returns. Empty and null documents are skipped.
func Each(in io.Reader, fn func(*unstructured.Unstructured) error) error {
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
			if err := fn(&objs[i]); err != nil {
				return err
			}
		}
	}
}
