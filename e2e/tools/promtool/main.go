// rulespec prints the spec of a prometheus-operator PrometheusRule as a plain Prometheus rules
// file, so that promtool checks and tests the very rules the PrometheusRule carries (one source
// of truth: deploy/components/alerts/prometheusrule.yaml).
//
//	rulespec PROMETHEUSRULE.yaml [UNIT_TESTS.yaml] > rules.yaml
//
// With UNIT_TESTS.yaml (a `promtool test rules` file), it also fails unless every alert has a
// case where it fires and one where it stays quiet: promtool only runs the cases it is given.
//
// It refuses anything but exactly one PrometheusRule whose spec holds groups and nothing else
// (a field a rules file does not have would otherwise be lost without a word).
package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

type prometheusRule struct {
	APIVersion string         `yaml:"apiVersion"`
	Kind       string         `yaml:"kind"`
	Metadata   map[string]any `yaml:"metadata"`
	// Kept as a node: the rules file is the spec as written, key order and all.
	Spec yaml.Node `yaml:"spec"`
}

func extract(in []byte) ([]byte, error) {
	dec := yaml.NewDecoder(bytes.NewReader(in))
	dec.KnownFields(true)
	var pr prometheusRule
	if err := dec.Decode(&pr); err != nil {
		return nil, fmt.Errorf("not a PrometheusRule: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one YAML document: want exactly one PrometheusRule")
	}
	if pr.APIVersion != "monitoring.coreos.com/v1" || pr.Kind != "PrometheusRule" {
		return nil, fmt.Errorf("want monitoring.coreos.com/v1 PrometheusRule, got %s %s", pr.APIVersion, pr.Kind)
	}
	if pr.Spec.Kind != yaml.MappingNode {
		return nil, errors.New("spec is not a mapping")
	}
	for i := 0; i < len(pr.Spec.Content); i += 2 {
		if key := pr.Spec.Content[i].Value; key != "groups" {
			return nil, fmt.Errorf("spec.%s: a Prometheus rules file has only groups", key)
		}
	}
	if len(pr.Spec.Content) == 0 {
		return nil, errors.New("spec has no groups")
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&pr.Spec); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// untested lists each alert of the rules file without a case in tests where it fires, or
// without one where it does not.
func untested(rules, tests []byte) ([]string, error) {
	var file struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(rules, &file); err != nil {
		return nil, err
	}
	var unit struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string      `yaml:"alertname"`
				ExpAlerts []yaml.Node `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(tests, &unit); err != nil {
		return nil, fmt.Errorf("unit tests: %w", err)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, t := range unit.Tests {
		for _, c := range t.AlertRuleTest {
			if len(c.ExpAlerts) > 0 {
				fires[c.Alertname] = true
			} else {
				quiet[c.Alertname] = true
			}
		}
	}
	var missing []string
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" && !fires[r.Alert] {
				missing = append(missing, r.Alert+": no case where it fires")
			}
			if r.Alert != "" && !quiet[r.Alert] {
				missing = append(missing, r.Alert+": no case where it stays quiet")
			}
		}
	}
	return missing, nil
}

func run(args []string) error {
	in, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	out, err := extract(in)
	if err != nil {
		return fmt.Errorf("%s: %w", args[0], err)
	}
	if len(args) == 2 {
		tests, err := os.ReadFile(args[1])
		if err != nil {
			return err
		}
		missing, err := untested(out, tests)
		if err != nil {
			return fmt.Errorf("%s: %w", args[1], err)
		}
		if len(missing) > 0 {
			return fmt.Errorf("%s: alerts without unit tests:\n  %s", args[1], strings.Join(missing, "\n  "))
		}
	}
	_, err = os.Stdout.Write(out)
	return err
}

func main() {
	if len(os.Args) < 2 || len(os.Args) > 3 {
		fmt.Fprintln(os.Stderr, "usage: rulespec PROMETHEUSRULE.yaml [UNIT_TESTS.yaml] > rules.yaml")
		os.Exit(2)
	}
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "rulespec: %v\n", err)
		os.Exit(1)
	}
}
