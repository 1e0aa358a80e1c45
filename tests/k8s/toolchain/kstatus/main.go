// kstatus-check reads Kubernetes objects as JSON (one object, a List, or a JSON array) on stdin
// and prints, for each, the status the kstatus library computes: one JSON object per line,
// {"kind", "name", "status", "message"}. The k8s tier uses it to hold the operator's
// conditions to what Flux and kpt conclude from them.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdict struct {
	Kind    string `json:"kind"`
	Name    string `json:"name"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

// objects decodes with apimachinery's JSON, which keeps integers int64 as the library expects
// (encoding/json would make metadata.generation a float64).
func objects(data []byte) ([]map[string]interface{}, error) {
	var many []map[string]interface{}
	if err := utiljson.Unmarshal(data, &many); err == nil {
		return many, nil
	}
	var one map[string]interface{}
	if err := utiljson.Unmarshal(data, &one); err != nil {
		return nil, err
	}
	if items, ok := one["items"].([]interface{}); ok {
		for _, item := range items {
			if obj, ok := item.(map[string]interface{}); ok {
				many = append(many, obj)
			}
		}
		return many, nil
	}
	return []map[string]interface{}{one}, nil
}

func main() {
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "reading stdin:", err)
		os.Exit(2)
	}
	objs, err := objects(data)
	if err != nil {
		fmt.Fprintln(os.Stderr, "decoding JSON:", err)
		os.Exit(2)
	}
	out := json.NewEncoder(os.Stdout)
	for _, obj := range objs {
		u := &unstructured.Unstructured{Object: obj}
		result, err := status.Compute(u)
		if err != nil {
			fmt.Fprintf(os.Stderr, "computing the status of %s %s: %v\n", u.GetKind(), u.GetName(), err)
			os.Exit(1)
		}
		_ = out.Encode(verdict{u.GetKind(), u.GetName(), result.Status.String(), result.Message})
	}
}
