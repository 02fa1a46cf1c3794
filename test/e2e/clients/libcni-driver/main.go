// Command libcni-driver runs a CNI network configuration list through libcni, the library that
// kubelet's container runtimes (containerd's go-cni, CRI-O's ocicni) link, so podnet's plugins
// can be tested against the real client code rather than a re-implementation of it.
//
// It is built offline from Debian's golang-github-appc-cni-dev:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o libcni-driver .
//
// Every run prints one JSON object on stdout:
//
//	{"verb":"add","ok":true,"result":{...}}           (add, cached: the result)
//	{"verb":"check","ok":true}                       (check, del, gc, status, validate)
//	{"verb":"del","ok":false,"error":"...","code":7}  (exit status 1; code when the plugin sent one)
//	{"verb":"info","ok":true,"info":{...}}           (library version facts and available verbs)
//
// ADD stores the result in libcni's cache (-cache-dir); CHECK and DEL read prevResult from that
// cache exactly as a runtime does. GC and STATUS exist only in libcni >= 1.2; they are looked up
// by reflection so the same source builds against older and newer libraries, and "info" says
// which verbs this build has.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
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

type gcAttachment struct {
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifname"`
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
			"verbs":             availableVerbs(cninet),
		}
		return nil
	}

	if conflist == "" {
		return errors.New("-conflist is required")
	}
	list, err := libcni.ConfListFromFile(conflist)
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
		var valid []gcAttachment
		if err := json.Unmarshal([]byte(attachments), &valid); err != nil {
			return fmt.Errorf("failed to parse -valid-attachments: %w", err)
		}
		return callGC(ctx, cninet, list, valid)
	case "status":
		return callStatus(ctx, cninet, list)
	default:
		return fmt.Errorf("unknown verb %q", verb)
	}
}

// availableVerbs names the verbs this build of libcni can run.
func availableVerbs(cninet *libcni.CNIConfig) []string {
	verbs := []string{"add", "check", "del", "validate", "cached"}
	v := reflect.ValueOf(cninet)
	if v.MethodByName("GCNetworkList").IsValid() {
		verbs = append(verbs, "gc")
	}
	if v.MethodByName("GetStatusNetworkList").IsValid() {
		verbs = append(verbs, "status")
	}
	return verbs
}

// callGC runs GCNetworkList(ctx, list, &GCArgs{ValidAttachments: [...]}) when the library has it.
func callGC(ctx context.Context, cninet *libcni.CNIConfig, list *libcni.NetworkConfigList, valid []gcAttachment) error {
	m := reflect.ValueOf(cninet).MethodByName("GCNetworkList")
	if !m.IsValid() {
		return errors.New("this libcni has no GCNetworkList (needs libcni >= 1.2)")
	}
	argsType := m.Type().In(2) // *libcni.GCArgs
	gcArgs := reflect.New(argsType.Elem())
	field := gcArgs.Elem().FieldByName("ValidAttachments") // []types.GCAttachment
	slice := reflect.MakeSlice(field.Type(), 0, len(valid))
	for _, a := range valid {
		item := reflect.New(field.Type().Elem()).Elem()
		item.FieldByName("ContainerID").SetString(a.ContainerID)
		item.FieldByName("IfName").SetString(a.IfName)
		slice = reflect.Append(slice, item)
	}
	field.Set(slice)
	return errorOf(m.Call([]reflect.Value{reflect.ValueOf(ctx), reflect.ValueOf(list), gcArgs}))
}

// callStatus runs GetStatusNetworkList(ctx, list) when the library has it.
func callStatus(ctx context.Context, cninet *libcni.CNIConfig, list *libcni.NetworkConfigList) error {
	m := reflect.ValueOf(cninet).MethodByName("GetStatusNetworkList")
	if !m.IsValid() {
		return errors.New("this libcni has no GetStatusNetworkList (needs libcni >= 1.2)")
	}
	return errorOf(m.Call([]reflect.Value{reflect.ValueOf(ctx), reflect.ValueOf(list)}))
}

func errorOf(ret []reflect.Value) error {
	if len(ret) != 1 || ret[0].IsNil() {
		return nil
	}
	return ret[0].Interface().(error)
}
