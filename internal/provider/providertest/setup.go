package providertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/moby/moby/client"
)

// BuildAgent builds the static stacyvm-agent into dir and returns its path,
// for a provider test's TestMain (once per package run).
func BuildAgent(dir string) (string, error) {
	p := filepath.Join(dir, "stacyvm-agent")
	build := exec.Command("go", "build", "-o", p, "github.com/stacyvm/stacyvm/cmd/stacyvm-agent")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build agent: %v\n%s", err, out)
	}
	return p, nil
}

// DockerEngine connects to the Docker engine of the environment and checks
// that it answers and holds images (never pulled). Without an engine the
// caller's tests skip with the returned reason, except under CI=true, where
// it is an error: CI must never pass by skipping. The client is the
// caller's to close.
func DockerEngine(images ...string) (cli *client.Client, skip string, err error) {
	cli, err = client.New(client.FromEnv)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
		for _, img := range images {
			if err == nil {
				_, err = cli.ImageInspect(ctx, img)
			}
		}
		cancel()
	}
	if err == nil {
		return cli, "", nil
	}
	if cli != nil {
		cli.Close()
	}
	if os.Getenv("CI") == "true" {
		return nil, "", fmt.Errorf("docker engine or images %v unavailable and CI=true: %w", images, err)
	}
	return nil, fmt.Sprintf("docker engine or images %v unavailable (%v); set CI=true to make this a failure", images, err), nil
}
