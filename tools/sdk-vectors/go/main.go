// Command go signs every case on stdin with the official Go SDK signer
// (github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/signer).
//
// `go run . < cases.jsonl > go.jsonl`, one `{"id", "authorization"}` line per case. It builds the
// SDK's request object the way the SDK's HTTP client holds it: the path decoded (the client
// escapes it when it sends it), the query as decoded values grouped by key.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strings"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/signer"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/request"
)

type testCase struct {
	ID      int         `json:"id"`
	Method  string      `json:"method"`
	Host    string      `json:"host"`
	Path    string      `json:"path"`
	Query   *string     `json:"query"`
	Headers [][2]string `json:"headers"`
	Body    string      `json:"body"`
	AK      string      `json:"ak"`
	SK      string      `json:"sk"`
	Token   *string     `json:"token"`
	Date    string      `json:"date"`
}

type result struct {
	ID            int    `json:"id"`
	Authorization string `json:"authorization"`
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// percentDecode decodes %XX escapes to bytes (not necessarily UTF-8, as Go's net/url does), a
// `%` without two hex digits stays literal, and `+` becomes a space only when plus is set.
func percentDecode(s string, plus bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' && i+2 < len(s) {
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if ok1 && ok2 {
				b.WriteByte(hi<<4 | lo)
				i += 2
				continue
			}
		}
		if c == '+' && plus {
			b.WriteByte(' ')
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func sign(c testCase) (string, error) {
	builder := request.NewHttpRequestBuilder().
		WithEndpoint("https://" + c.Host).
		WithPath(percentDecode(c.Path, false)).
		WithMethod(c.Method)
	for _, h := range c.Headers {
		builder.AddHeaderParam(h[0], h[1])
	}
	builder.AddHeaderParam("X-Sdk-Date", c.Date)
	if c.Token != nil {
		// What the SDK's credentials add before signing temporary credentials.
		builder.AddHeaderParam("X-Security-Token", *c.Token)
	}
	if c.Query != nil {
		values := map[string][]string{}
		var order []string
		for _, part := range strings.Split(*c.Query, "&") {
			if part == "" {
				continue
			}
			k, v, _ := strings.Cut(part, "=")
			k, v = percentDecode(k, true), percentDecode(v, true)
			if _, ok := values[k]; !ok {
				order = append(order, k)
			}
			values[k] = append(values[k], v)
		}
		for _, k := range order {
			// The SDK's generated clients pass query values as reflect.Values; repeated keys
			// are slices.
			builder.AddQueryParam(k, reflect.ValueOf(values[k]))
		}
	}
	if c.Body != "" {
		builder.WithBody("application/json", c.Body)
	}
	headers, err := signer.Signer{}.Sign(builder.Build(), c.AK, c.SK)
	if err != nil {
		return "", err
	}
	return headers["Authorization"], nil
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	for in.Scan() {
		var c testCase
		if err := json.Unmarshal(in.Bytes(), &c); err != nil {
			fmt.Fprintln(os.Stderr, "bad case:", err)
			os.Exit(1)
		}
		auth, err := sign(c)
		if err != nil {
			fmt.Fprintf(os.Stderr, "case %d: %v\n", c.ID, err)
			os.Exit(1)
		}
		if err := enc.Encode(result{ID: c.ID, Authorization: auth}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
