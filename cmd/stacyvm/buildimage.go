package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/stacyvm/stacyvm/internal/config"
	"github.com/stacyvm/stacyvm/internal/provider/vm"
)

// newBuildImageCmd converts a local Docker image into the vm provider's
// ext4 root disk ahead of the first sandbox (docs/vm.md).
func newBuildImageCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "build-image IMAGE",
		Short: "Convert a local Docker image into a microVM root disk (vm provider)",
		Long: "Convert a local Docker image into the ext4 root disk the vm provider boots,\n" +
			"cached per image id under <data_dir>/vm/images (the server converts images\n" +
			"on first use too; this does it ahead of time, with progress). The image is\n" +
			"exported from a container that is never started, then written with\n" +
			"mkfs.ext4 -d: no registry, no loop mounts. The kernel and initramfs come from\n" +
			"scripts/build-vm-assets.sh. Reads the same config as serve (data_dir,\n" +
			"providers.docker.host).",
		Args: withArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := config.Load(config.LoadOptions{File: g.configFile, Env: g.env.environ, Home: g.env.getenv("HOME")})
			if err != nil {
				return err
			}
			errw := cmd.ErrOrStderr()
			start := time.Now()
			progress := func(format string, a ...any) {
				fmt.Fprintf(errw, "[%5.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, a...))
			}
			img, err := vm.ConvertImage(cmd.Context(), filepath.Join(cfg.DataDir, "vm"), cfg.Providers.Docker.Host, args[0], progress)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if g.jsonOutput() {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(map[string]any{"image": img.Ref, "id": img.ID, "rootfs": img.Rootfs,
					"size_bytes": img.SizeBytes, "cached": img.Cached, "built": img.Built})
			}
			state := "built"
			if img.Cached {
				state = "cached"
			}
			fmt.Fprintf(out, "%s %s: %s (%d MiB disk, sparse)\n", img.Ref, state, img.Rootfs, img.SizeBytes>>20)
			return nil
		},
	}
}
