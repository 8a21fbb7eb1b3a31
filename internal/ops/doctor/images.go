package doctor

import (
	"context"
	"fmt"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/stacyvm/stacyvm/internal/config"
)

// DockerImages checks each image is present in the Docker engine a
// docker-family provider uses (sandboxes never pull in production).
func DockerImages(ctx context.Context, cfg *config.Config, providerName string, images []string) []Check {
	sec := "provider " + providerName
	host := cfg.Providers.Docker.Host
	switch providerName {
	case "gvisor":
		host = cfg.Providers.Gvisor.Host
	case "kata":
		host = cfg.Providers.Kata.Host
	}
	var opts []client.Opt
	if host != "" {
		opts = append(opts, client.WithHost(host))
	} else {
		opts = append(opts, client.FromEnv)
	}
	cli, err := client.New(opts...)
	if err != nil {
		return []Check{{Section: sec, Name: "images", Status: Fail, Detail: err.Error(), Remedy: "fix providers." + providerName + ".host; " + docProviders}}
	}
	defer cli.Close()
	var out []Check
	for _, img := range images {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		res, err := cli.ImageInspect(cctx, img)
		cancel()
		switch {
		case err == nil:
			out = append(out, Check{Section: sec, Name: "image " + img, Status: Pass,
				Detail: fmt.Sprintf("%s, %.1f MB", shortID(res.ID), float64(res.Size)/1e6)})
		case cerrdefs.IsNotFound(err):
			out = append(out, Check{Section: sec, Name: "image " + img, Status: Fail, Detail: "not present in the engine",
				Remedy: "scripts/build-images.sh (builds stacyvm/busybox and stacyvm/python offline) or docker load -i <image>.tar; " + docImages})
		default:
			out = append(out, Check{Section: sec, Name: "image " + img, Status: Fail, Detail: oneLine(err.Error()),
				Remedy: "start the engine (systemctl start docker); " + docProviders})
		}
	}
	return out
}

func shortID(id string) string {
	if len(id) > 19 {
		return id[:19]
	}
	return id
}
