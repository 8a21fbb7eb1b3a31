package app

import (
	"log/slog"

	"github.com/stacyvm/stacyvm/internal/config"
	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider/e2b"
)

// newE2BProvider builds the e2b provider (Preview; docs/providers.md#e2b-preview)
// from providers.e2b. agentPath is uploaded into every E2B sandbox, so it
// must be a static linux/amd64 build, which the embedded agent is on amd64
// hosts.
func newE2BProvider(ec config.E2BConfig, defaultImage, serverID, agentPath string, log *slog.Logger) (*e2b.Provider, error) {
	key, err := ec.ResolvedAPIKey()
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "e2b provider")
	}
	log.Warn("the e2b provider is Preview: verified against a local fake of E2B's API only (docs/providers.md#e2b-preview)")
	return e2b.New(e2b.Config{
		Name:         config.ProviderE2B,
		APIURL:       ec.APIURL,
		APIKey:       key,
		Domain:       ec.Domain,
		Template:     ec.Template,
		DefaultImage: defaultImage,
		Timeout:      ec.Timeout.Std(),
		AgentPath:    agentPath,
		ServerID:     serverID,
	}, log.With("provider", config.ProviderE2B))
}
