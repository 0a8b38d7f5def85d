// argocd-lua runs an Argo CD resource health script through Argo CD's own Lua VM (the argo-cd util/lua
// package at the version pinned in tools/gitops/versions.env), configured the way `argocd-cm` configures it:
// the script is a resource override (`resource.customizations.health.<group>_<Kind>`), and the VM opens only
// base, table, package and Argo CD's restricted os library unless -open-libs is given
// (`resource.customizations.useOpenLibs.<group>_<Kind>: true`).
//
// Usage:
//
//	argocd-lua test DIR       run every case of DIR/health_test.yaml against DIR/health.lua; prints one JSON
//	                          line per case and exits 1 if any case differs from its expected health
//	argocd-lua health SCRIPT  read objects (YAML or JSON, `---`-separated, or a List) from stdin and print
//	                          each object's health as a JSON line
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"cloudjob.io/tools/gitops/objects"
	"github.com/argoproj/argo-cd/gitops-engine/pkg/health"
	appv1 "github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	"github.com/argoproj/argo-cd/v3/util/lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

type testFile struct {
	Tests []struct {
		InputPath    string              `json:"inputPath"`
		HealthStatus health.HealthStatus `json:"healthStatus"`
	} `json:"tests"`
}

type result struct {
	Input    string               `json:"input,omitempty"`
	Name     string               `json:"name,omitempty"`
	Health   *health.HealthStatus `json:"health,omitempty"`
	Expected *health.HealthStatus `json:"expected,omitempty"`
	Error    string               `json:"error,omitempty"`
	Pass     *bool                `json:"pass,omitempty"`
}

var openLibs = flag.Bool("open-libs", false, "open all Lua standard libraries (argocd-cm resource.customizations.useOpenLibs)")

func main() {
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: argocd-lua [-open-libs] test DIR | health SCRIPT < objects")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 2 {
		flag.Usage()
		os.Exit(2)
	}
	var err error
	switch flag.Arg(0) {
	case "test":
		err = runTests(flag.Arg(1))
	case "health":
		err = runHealth(flag.Arg(1), os.Stdin)
	default:
		flag.Usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "argocd-lua:", err)
		os.Exit(1)
	}
}

// evaluate does what Argo CD's controller does for a resource with a health override in argocd-cm
// (lua.ResourceHealthOverrides.GetResourceHealth).
func evaluate(script string, obj *unstructured.Unstructured) (*health.HealthStatus, error) {
	gvk := obj.GroupVersionKind()
	key := gvk.Kind
	if gvk.Group != "" {
		key = gvk.Group + "/" + gvk.Kind
	}
	overrides := lua.ResourceHealthOverrides{key: appv1.ResourceOverride{HealthLua: script, UseOpenLibs: *openLibs}}
	st, err := overrides.GetResourceHealth(obj)
	if err == nil && st == nil {
		err = errors.New("no health script applies to " + key)
	}
	return st, err
}

func runTests(dir string) error {
	script, err := os.ReadFile(filepath.Join(dir, "health.lua"))
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(filepath.Join(dir, "health_test.yaml"))
	if err != nil {
		return err
	}
	var tf testFile
	if err := yaml.UnmarshalStrict(raw, &tf); err != nil {
		return fmt.Errorf("health_test.yaml: %w", err)
	}
	if len(tf.Tests) == 0 {
		return errors.New("health_test.yaml has no tests")
	}
	out := json.NewEncoder(os.Stdout)
	failed := 0
	for _, tc := range tf.Tests {
		expected := tc.HealthStatus
		r := result{Input: tc.InputPath, Expected: &expected}
		obj, err := readObject(filepath.Join(dir, tc.InputPath))
		if err == nil {
			r.Health, err = evaluate(string(script), obj)
		}
		if err != nil {
			r.Error = err.Error()
		}
		pass := err == nil && *r.Health == expected
		r.Pass = &pass
		if !pass {
			failed++
		}
		if err := out.Encode(r); err != nil {
			return err
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d cases failed", failed, len(tf.Tests))
	}
	return nil
}

func readObject(path string) (*unstructured.Unstructured, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	obj := map[string]any{}
	if err := yaml.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &unstructured.Unstructured{Object: obj}, nil
}

func runHealth(scriptPath string, in io.Reader) error {
	script, err := os.ReadFile(scriptPath)
	if err != nil {
		return err
	}
	out := json.NewEncoder(os.Stdout)
	return objects.Each(in, func(o *unstructured.Unstructured) error {
		r := result{Name: o.GetNamespace() + "/" + o.GetName()}
		st, err := evaluate(string(script), o)
		if err != nil {
			r.Error = err.Error()
		} else {
			r.Health = st
		}
		return out.Encode(r)
	})
}
