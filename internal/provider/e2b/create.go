package e2b

import (
	"context"
	"maps"
	"strings"
	"time"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider"
)

// cleanupTimeout bounds the rollback of a failed create, which runs even
// when the caller's context is already cancelled.
const cleanupTimeout = 15 * time.Second

// Create runs the pipeline: E2B sandbox → agent upload (envd files) →
// agent start (envd process) → wait for the agent through the port proxy.
// On failure the E2B sandbox is killed.
//
// Spec.Image, MemoryMB, VCPUs and PidsLimit have no per-sandbox E2B
// equivalent: the template (Config.Template) fixes the filesystem and
// resources. They are recorded in metadata, not applied.
func (p *Provider) Create(ctx context.Context, spec provider.Spec) (h provider.Handle, err error) {
	if err := provider.ValidSandboxID(spec.SandboxID, MaxSandboxIDLen); err != nil {
		return h, err
	}
	req, err := p.newSandboxRequest(spec)
	if err != nil {
		return h, err
	}
	start := time.Now()
	log := p.log.With("sandbox_id", spec.SandboxID)

	sbx, err := p.api.createSandbox(ctx, req)
	if err != nil {
		return h, err
	}
	defer func() {
		if err == nil {
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if kerr := p.api.killSandbox(cctx, sbx.SandboxID); kerr != nil && !errs.Is(kerr, errs.NotFound) {
			log.Warn("rollback: kill E2B sandbox", "e2b_sandbox", sbx.SandboxID, "err", kerr)
		}
	}()
	domain := p.cfg.Domain
	if sbx.Domain != nil && *sbx.Domain != "" {
		domain = *sbx.Domain
	}
	ev := &envd{hc: p.hc, base: "https://" + sandboxHost(envdPort, sbx.SandboxID, domain), token: sbx.EnvdAccessToken}
	uctx, cancel := context.WithTimeout(ctx, 2*p.cfg.RequestTimeout)
	err = ev.upload(uctx, p.cfg.AgentPath, agentPath)
	cancel()
	if err != nil {
		return h, err
	}
	sctx, cancel := context.WithTimeout(ctx, p.cfg.RequestTimeout)
	_, err = ev.start(sctx, processConfig{
		Cmd: "/bin/sh",
		Args: []string{"-c", "chmod 0755 " + agentPath + " && exec " + agentPath +
			" --listen tcp://0.0.0.0:" + itoa(agentPort) + " --workdir /workspace"},
		// The agent reads and then unsets it: execs never see it.
		Envs: map[string]string{"STACYVM_AGENT_TOKEN": p.agentToken(spec.SandboxID, sbx.SandboxID)},
	}, "stacyvm-agent")
	cancel()
	if err != nil {
		return h, err
	}
	ac := p.newAgentClient(spec.SandboxID, sbx.SandboxID, domain)
	if err = waitReady(ctx, ac, p.cfg.ReadyTimeout); err != nil {
		ac.Close()
		return h, err
	}
	p.mu.Lock()
	if old := p.agents[spec.SandboxID]; old != nil {
		old.c.Close()
	}
	p.agents[spec.SandboxID] = &agentEntry{c: ac, runtimeID: sbx.SandboxID, refreshed: time.Now()}
	p.mu.Unlock()
	log.Info("e2b sandbox ready", "e2b_sandbox", sbx.SandboxID, "template", req.TemplateID, "ms", time.Since(start).Milliseconds())
	return provider.Handle{
		Provider:  p.cfg.Name,
		SandboxID: spec.SandboxID,
		RuntimeID: sbx.SandboxID,
		Data:      map[string]string{"domain": domain, "agent_port": itoa(agentPort)},
	}, nil
}

func (p *Provider) newSandboxRequest(spec provider.Spec) (newSandbox, error) {
	var internet bool
	switch spec.Network {
	case "", provider.NetworkNone:
	case provider.NetworkBridge:
		internet = true
	default:
		return newSandbox{}, errs.New(errs.Invalid, "network %q is not none or bridge", spec.Network)
	}
	for k, v := range spec.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.Contains(v, "\x00") {
			return newSandbox{}, errs.New(errs.Invalid, "invalid environment variable %q", k)
		}
	}
	template, err := p.templateFor(spec.Image)
	if err != nil {
		return newSandbox{}, err
	}
	meta := map[string]string{}
	for k, v := range spec.Labels {
		meta[k] = v
	}
	maps.Copy(meta, p.ownMeta(spec.SandboxID))
	if spec.Image != "" {
		meta["stacyvm.image"] = spec.Image
	}
	return newSandbox{
		TemplateID:          template,
		Timeout:             int(p.cfg.Timeout / time.Second),
		AllowInternetAccess: &internet,
		Metadata:            meta,
		EnvVars:             maps.Clone(spec.Env),
	}, nil
}

// TemplatePrefix marks an image that names an E2B template: "e2b/base".
// It is a path, not a tag ("e2b:base"), so the name is a valid Docker-style
// reference: the server parses every image the same way, and image policies
// match E2B templates like any other image ("e2b/*").
const TemplatePrefix = "e2b/"

// templateFor maps a spawn's image to the E2B template it starts from.
// E2B runs templates, not local images, so a Docker image name cannot be
// honoured: "e2b/<template>" picks a template, "" or the server's default
// image picks Config.Template, anything else is refused rather than
// silently replaced.
func (p *Provider) templateFor(image string) (string, error) {
	switch {
	case strings.HasPrefix(image, TemplatePrefix):
		t := strings.TrimPrefix(image, TemplatePrefix)
		if t == "" || strings.ContainsAny(t, "/:@?#% \t\n") {
			return "", errs.New(errs.Invalid, "image %q: want e2b/<template id or alias>, without tag or digest", image)
		}
		return t, nil
	case image == "" || image == p.cfg.DefaultImage:
		return p.cfg.Template, nil
	}
	return "", errs.New(errs.Invalid, "the e2b provider runs E2B templates, not local images: "+
		"use image \"e2b/<template>\" (e.g. e2b/%s), or no image for providers.e2b.template; got %q", p.cfg.Template, image)
}

// waitReady pings the agent until it answers or timeout passes. Until the
// agent listens, E2B's proxy answers 502: retried.
func waitReady(ctx context.Context, ac *agent.Client, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := ac.Ping(pctx)
		pcancel()
		if err == nil {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return errs.Wrap(errs.Timeout, last, "agent in the E2B sandbox did not answer within %s", timeout)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
