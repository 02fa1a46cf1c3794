// Command libcni-driver runs a CNI network configuration list through libcni, the library that
// kubelet's container runtimes (containerd's go-cni, CRI-O's ocicni) link, so podnet's plugins
// can be tested against the real client code rather than a re-implementation of it.
//
// It is a Go module pinned to the newest libcni v1 (go.mod; the version is also in
// scripts/peers.versions), built with the machine's Go by `scripts/peers.sh libcni` into the
// peers cache (`scripts/peers.sh --dir libcni`/bin/libcni-driver).
//
// Every run prints one JSON object on stdout:
//
//	{"verb":"add","ok":true,"result":{...}}           (add, cached: the result)
//	{"verb":"check","ok":true}                       (check, del, gc, status, validate)
//	{"verb":"del","ok":false,"error":"...","code":7}  (exit status 1; code when the plugin sent one)
//	{"verb":"info","ok":true,"info":{...}}           (library version facts and available verbs)
//
// ADD stores the result in libcni's cache (-cache-dir); CHECK and DEL read prevResult from that
// cache exactly as a runtime does. GC and STATUS (spec 1.1.0) go through GCNetworkList and
// GetStatusNetworkList, as containerd 2's go-cni calls them.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

type output struct {
	Verb   string      `json:"verb"`
	OK     bool        `json:"ok"`
	Result interface{} `json:"result,omitempty"`
	Info   interface{} `json:"info,omitempty"`
	Error  string      `json:"error,omitempty"`
	Code   uint        `json:"code,omitempty"`
}

func main() {
	var (
		verb        = flag.String("verb", "", "add | check | del | gc | status | validate | cached | info")
		conflist    = flag.String("conflist", "", "network configuration list file (.conflist)")
		binDirs     = flag.String("bin-dirs", "", "plugin directories, separated by ':'")
		cacheDir    = flag.String("cache-dir", "", "libcni result cache directory")
		containerID = flag.String("container-id", "", "container ID")
		netns       = flag.String("netns", "", "network namespace path")
		ifName      = flag.String("ifname", "eth0", "interface name inside the container")
		cniArgs     = flag.String("args", "", "CNI_ARGS as K=V;K2=V2")
		capArgs     = flag.String("capability-args", "", "runtimeConfig capability arguments, JSON object")
		attachments = flag.String("valid-attachments", "[]", `gc: JSON list of {"containerID","ifname"}`)
		timeout     = flag.Duration("timeout", 60*time.Second, "deadline for the whole operation")
	)
	flag.Parse()

	out := output{Verb: *verb}
	err := run(&out, *verb, *conflist, *binDirs, *cacheDir, *containerID, *netns, *ifName, *cniArgs, *capArgs, *attachments, *timeout)
	if err != nil {
		out.OK = false
		out.Error = err.Error()
		var cniErr *types.Error
		if errors.As(err, &cniErr) {
			out.Code = cniErr.Code
		}
	} else {
		out.OK = true
	}
	enc := json.NewEncoder(os.Stdout)
	if encErr := enc.Encode(out); encErr != nil {
		fmt.Fprintf(os.Stderr, "failed to encode output: %v\n", encErr)
		os.Exit(2)
	}
	if err != nil {
		os.Exit(1)
	}
}

func run(out *output, verb, conflist, binDirs, cacheDir, containerID, netns, ifName, cniArgs, capArgs, attachments string, timeout time.Duration) error {
	cninet := libcni.NewCNIConfigWithCacheDir(filepath.SplitList(binDirs), cacheDir, &invoke.DefaultExec{
		RawExec:       &invoke.RawExec{Stderr: os.Stderr},
		PluginDecoder: version.PluginDecoder{},
	})
	if verb == "info" {
		out.Info = map[string]interface{}{
			"specVersion":       version.Current(),
			"supportedVersions": version.All.SupportedVersions(),
			"verbs":             []string{"add", "check", "del", "validate", "cached", "gc", "status"},
		}
		return nil
	}

	if conflist == "" {
		return errors.New("-conflist is required")
	}
	list, err := libcni.NetworkConfFromFile(conflist)
	if err != nil {
		return fmt.Errorf("failed to load conflist %q: %w", conflist, err)
	}
	rt := &libcni.RuntimeConf{ContainerID: containerID, NetNS: netns, IfName: ifName}
	if cniArgs != "" {
		for _, kv := range strings.Split(cniArgs, ";") {
			k, v, found := strings.Cut(kv, "=")
			if !found {
				return fmt.Errorf("failed to parse -args %q: %q is not K=V", cniArgs, kv)
			}
			rt.Args = append(rt.Args, [2]string{k, v})
		}
	}
	if capArgs != "" {
		if err := json.Unmarshal([]byte(capArgs), &rt.CapabilityArgs); err != nil {
			return fmt.Errorf("failed to parse -capability-args: %w", err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	switch verb {
	case "add":
		res, err := cninet.AddNetworkList(ctx, list, rt)
		if err != nil {
			return err
		}
		out.Result = res
		return nil
	case "check":
		return cninet.CheckNetworkList(ctx, list, rt)
	case "del":
		return cninet.DelNetworkList(ctx, list, rt)
	case "validate":
		_, err := cninet.ValidateNetworkList(ctx, list)
		return err
	case "cached":
		res, err := cninet.GetNetworkListCachedResult(list, rt)
		if err != nil {
			return err
		}
		out.Result = res
		return nil
	case "gc":
		args := &libcni.GCArgs{}
		if err := json.Unmarshal([]byte(attachments), &args.ValidAttachments); err != nil {
			return fmt.Errorf("failed to parse -valid-attachments: %w", err)
		}
		return cninet.GCNetworkList(ctx, list, args)
	case "status":
		return cninet.GetStatusNetworkList(ctx, list)
	default:
		return fmt.Errorf("unknown verb %q", verb)
	}
}
