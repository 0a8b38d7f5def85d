// Command etcd builds the etcd server from go.etcd.io/etcd/server/v3 (its own go.mod has replace
// directives, so `go install` of it does not work).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
