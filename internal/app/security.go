package app

import (
	"log/slog"

	"github.com/stacyvm/stacyvm/internal/api"
	"github.com/stacyvm/stacyvm/internal/auth"
	"github.com/stacyvm/stacyvm/internal/config"
	"github.com/stacyvm/stacyvm/internal/store"
)

// securityOptions builds the API's authentication, limits and CORS from
// the auth and server sections (docs/security.md).
func securityOptions(cfg *config.Config, gov store.Governance, log *slog.Logger) (api.SecurityOptions, error) {
	a := cfg.Auth
	so := api.SecurityOptions{
		Keys:          map[api.Role][]string{api.RoleViewer: {a.ViewerAPIKey}},
		AdminFallback: a.AdminFallbackEnabled,
		Governance:    gov,
		RateLimit:     a.RateLimitPerSecond,
		RateBurst:     a.RateLimitBurst,
		RateMaxKeys:   a.RateLimitMaxKeys,
	}
	origins, err := api.NewOriginPolicy(cfg.Server.CORSAllowedOrigins, cfg.Server.Mode == config.ModeDevelopment)
	if err != nil {
		return so, err
	}
	so.Origins = origins
	if a.OIDCIssuer != "" {
		v, err := auth.NewOIDC(auth.OIDCConfig{
			Issuer: a.OIDCIssuer, Audience: a.OIDCAudience, JWKSURL: a.OIDCJWKSURL,
			ClockSkew: a.OIDCClockSkew.Std(), GroupsClaim: a.OIDCGroupsClaim, TenantClaim: a.OIDCTenantClaim,
			AdminGroups: a.OIDCAdminGroups, TenantAdminGroups: a.OIDCTenantAdminGroups,
			OperatorGroups: a.OIDCOperatorGroups, ViewerGroups: a.OIDCViewerGroups,
			DefaultRole: auth.Role(a.OIDCDefaultRole),
		})
		if err != nil {
			return so, err
		}
		so.OIDC = v
		log.Info("OIDC bearer tokens accepted", "issuer", a.OIDCIssuer, "audience", a.OIDCAudience)
	}
	if !isLoopback(cfg.Server.Host) {
		for _, f := range cfg.ProductionFindings() {
			log.Warn("security: " + f)
		}
	}
	return so, nil
}

// defaultNetworks is each provider's network when a request names none,
// for tenant network policies.
func defaultNetworks(cfg *config.Config) map[string]string {
	pc := cfg.Providers
	return map[string]string{
		"docker": pc.Docker.NetworkMode, "gvisor": pc.Gvisor.NetworkMode, "kata": pc.Kata.NetworkMode,
		"mock": "none", "proot": "bridge",
	}
}
