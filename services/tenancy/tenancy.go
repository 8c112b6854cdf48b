// Package tenancy manages organizations, operators, apps and the origins
// and return URLs an app registers for Connect.
package tenancy

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/services/apikeys"
	"github.com/latchkey/latchkey/services/audit"
	"github.com/latchkey/latchkey/services/errs"
	"github.com/latchkey/latchkey/services/password"
)

// Keyrings creates an app's first data key inside the app's transaction.
type Keyrings interface {
	CreateKeyring(ctx context.Context, tx *gorm.DB, appID string) error
}

// KeyMinter mints app keys.
type KeyMinter interface {
	Mint(ctx context.Context, in apikeys.MintInput) (apikeys.Minted, error)
}

// Service manages tenants.
type Service struct {
	db       *gorm.DB
	keyrings Keyrings
	keys     KeyMinter
	audit    *audit.Log
	hash     password.Params
	now      func() time.Time
}

// New builds the service. hash sets the argon2id cost for new passwords.
func New(db *gorm.DB, k Keyrings, keys KeyMinter, a *audit.Log, hash password.Params, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{db: db, keyrings: k, keys: keys, audit: a, hash: hash, now: now}
}

// BootstrapInput is `latchkey admin bootstrap`.
type BootstrapInput struct {
	Org              string
	App              string
	OperatorEmail    string
	OperatorPassword string // empty: generate one when the operator is new
}

// BootstrapResult is what bootstrap prints. OperatorPassword is set only
// when a password was generated for a newly created operator.
type BootstrapResult struct {
	OrgID            string
	AppID            string
	AppKey           apikeys.Minted
	OperatorID       string
	OperatorEmail    string
	OperatorPassword string
	CreatedOrg       bool
	CreatedApp       bool
	CreatedOperator  bool
}

// maxNameRunes bounds organization and app names.
const maxNameRunes = 100

// nameRE leaves the length to ValidName: a bounded repeat of a Unicode
// class ({0,99}) compiles into a hundred copies of it, which cost every
// process (each admin command too) about 2 ms and 4 MB at start-up.
var nameRE = regexp.MustCompile(`^[\pL\pN][\pL\pN _.-]*$`)

// ValidName reports whether s is an acceptable organization or app name.
func ValidName(s string) bool {
	return utf8.RuneCountInString(s) <= maxNameRunes && nameRE.MatchString(s)
}

// NormalizeEmail lower-cases and trims an email and checks its shape.
func NormalizeEmail(s string) (string, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	at := strings.LastIndexByte(s, '@')
	if at < 1 || at == len(s)-1 || strings.ContainsAny(s, " \t\r\n<>") || len(s) > 254 {
		return "", false
	}
	return s, true
}

// Bootstrap reuses or creates the organization and operator, reuses or
// creates the app, then mints a fresh app key. It can be run many times.
func (s *Service) Bootstrap(ctx context.Context, in BootstrapInput) (BootstrapResult, error) {
	var v errs.Validation
	in.Org, in.App = strings.TrimSpace(in.Org), strings.TrimSpace(in.App)
	if !ValidName(in.Org) {
		v.Add("org", "must be 1-100 letters, digits, spaces, dots, dashes or underscores")
	}
	if !ValidName(in.App) {
		v.Add("app", "must be 1-100 letters, digits, spaces, dots, dashes or underscores")
	}
	email, ok := NormalizeEmail(in.OperatorEmail)
	if !ok {
		v.Add("operator-email", "must be an email address")
	}
	if in.OperatorPassword != "" && len(in.OperatorPassword) < 12 {
		v.Add("operator-password", "must be at least 12 characters")
	}
	if err := v.Err(); err != nil {
		return BootstrapResult{}, err
	}

	res := BootstrapResult{OperatorEmail: email}
	pw := in.OperatorPassword
	generated := false
	if pw == "" {
		var err error
		if pw, err = password.Generate(); err != nil {
			return BootstrapResult{}, err
		}
		generated = true
	}
	// Hash outside the transaction: argon2id is deliberately slow.
	hash, err := password.Hash(pw, s.hash)
	if err != nil {
		return BootstrapResult{}, err
	}
	now := s.now().UTC()

	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var org models.Organization
		switch err := tx.Where("name = ?", in.Org).Take(&org).Error; {
		case errors.Is(err, gorm.ErrRecordNotFound):
			org = models.Organization{ID: uuid.NewString(), Name: in.Org, CreatedAt: now, UpdatedAt: now}
			if err := tx.Create(&org).Error; err != nil {
				return fmt.Errorf("tenancy: create organization: %w", err)
			}
			res.CreatedOrg = true
		case err != nil:
			return fmt.Errorf("tenancy: load organization: %w", err)
		}
		res.OrgID = org.ID

		var op models.Operator
		switch err := tx.Where("email = ?", email).Take(&op).Error; {
		case errors.Is(err, gorm.ErrRecordNotFound):
			op = models.Operator{ID: uuid.NewString(), Email: email, PasswordHash: hash, CreatedAt: now, UpdatedAt: now}
			if err := tx.Create(&op).Error; err != nil {
				return fmt.Errorf("tenancy: create operator: %w", err)
			}
			res.CreatedOperator = true
			if err := s.audit.InTx(ctx, tx, models.AuditEvent{OrganizationID: org.ID, Action: audit.ActionOperatorCreate, ActorKind: audit.ActorCLI, ActorID: op.ID}); err != nil {
				return err
			}
		case err != nil:
			return fmt.Errorf("tenancy: load operator: %w", err)
		}
		res.OperatorID = op.ID

		var m models.Membership
		switch err := tx.Where("organization_id = ? AND operator_id = ?", org.ID, op.ID).Take(&m).Error; {
		case errors.Is(err, gorm.ErrRecordNotFound):
			role := models.RoleAdmin
			if res.CreatedOrg {
				role = models.RoleOwner
			}
			m = models.Membership{ID: uuid.NewString(), OrganizationID: org.ID, OperatorID: op.ID, Role: role, CreatedAt: now}
			if err := tx.Create(&m).Error; err != nil {
				return fmt.Errorf("tenancy: create membership: %w", err)
			}
		case err != nil:
			return fmt.Errorf("tenancy: load membership: %w", err)
		}

		var app models.App
		switch err := tx.Where("organization_id = ? AND name = ?", org.ID, in.App).Take(&app).Error; {
		case errors.Is(err, gorm.ErrRecordNotFound):
			app = models.App{ID: uuid.NewString(), OrganizationID: org.ID, Name: in.App, DisplayName: in.App, CreatedAt: now, UpdatedAt: now}
			if err := tx.Create(&app).Error; err != nil {
				return fmt.Errorf("tenancy: create app: %w", err)
			}
			res.CreatedApp = true
			if err := s.keyrings.CreateKeyring(ctx, tx, app.ID); err != nil {
				return fmt.Errorf("tenancy: create keyring: %w", err)
			}
			if err := s.audit.InTx(ctx, tx, models.AuditEvent{OrganizationID: org.ID, AppID: app.ID, Action: audit.ActionAppCreate, ActorKind: audit.ActorCLI, ActorID: op.ID}); err != nil {
				return err
			}
		case err != nil:
			return fmt.Errorf("tenancy: load app: %w", err)
		}
		res.AppID = app.ID
		return nil
	})
	if err != nil {
		return BootstrapResult{}, err
	}
	if res.CreatedOperator && generated {
		res.OperatorPassword = pw
	}
	// The key is minted after the app's keyring is committed: sealing needs it.
	minted, err := s.keys.Mint(ctx, apikeys.MintInput{AppID: res.AppID, Label: "bootstrap", Actor: apikeys.Actor{Kind: audit.ActorCLI, ID: res.OperatorID}})
	if err != nil {
		return BootstrapResult{}, err
	}
	res.AppKey = minted
	return res, nil
}

// App loads one app.
func (s *Service) App(ctx context.Context, appID string) (models.App, error) {
	var app models.App
	if _, err := uuid.Parse(appID); err != nil {
		return app, errs.Invalid("app", "must be an app id (UUID)")
	}
	err := s.db.WithContext(ctx).Where("id = ?", appID).Take(&app).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return app, fmt.Errorf("app: %w", errs.ErrNotFound)
	}
	if err != nil {
		return app, fmt.Errorf("tenancy: load app: %w", err)
	}
	return app, nil
}

// URLs are an app's registered Connect origins and return URLs.
type URLs struct {
	Origins    []string
	ReturnURLs []string
}

// SetURLs replaces the app's allowed origins and return URLs.
func (s *Service) SetURLs(ctx context.Context, appID string, in URLs, actor apikeys.Actor) error {
	var v errs.Validation
	origins := dedupe(in.Origins)
	returns := dedupe(in.ReturnURLs)
	for _, o := range origins {
		if msg := checkOrigin(o); msg != "" {
			v.Add("allowed-origin", "%s", msg)
		}
	}
	for _, r := range returns {
		if msg := checkReturnURL(r); msg != "" {
			v.Add("return-url", "%s", msg)
		}
	}
	if len(origins) == 0 && len(returns) == 0 {
		v.Add("allowed-origin", "give at least one --allowed-origin or --return-url")
	}
	if err := v.Err(); err != nil {
		return err
	}
	app, err := s.App(ctx, appID)
	if err != nil {
		return err
	}
	now := s.now().UTC()
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Where("app_id = ?", app.ID).Delete(&models.AppURL{}).Error; err != nil {
			return fmt.Errorf("tenancy: clear urls: %w", err)
		}
		rows := make([]models.AppURL, 0, len(origins)+len(returns))
		for _, o := range origins {
			rows = append(rows, models.AppURL{ID: uuid.NewString(), AppID: app.ID, Kind: models.AppURLOrigin, Value: o, CreatedAt: now})
		}
		for _, r := range returns {
			rows = append(rows, models.AppURL{ID: uuid.NewString(), AppID: app.ID, Kind: models.AppURLReturnURL, Value: r, CreatedAt: now})
		}
		if err := tx.Create(&rows).Error; err != nil {
			return fmt.Errorf("tenancy: save urls: %w", err)
		}
		return s.audit.InTx(ctx, tx, models.AuditEvent{
			OrganizationID: app.OrganizationID, AppID: app.ID, Action: audit.ActionAppURLs,
			ActorKind: actor.Kind, ActorID: actor.ID,
		})
	})
}

// GetURLs returns the app's registered URLs.
func (s *Service) GetURLs(ctx context.Context, appID string) (URLs, error) {
	var rows []models.AppURL
	if err := s.db.WithContext(ctx).Where("app_id = ?", appID).Order("value").Find(&rows).Error; err != nil {
		return URLs{}, fmt.Errorf("tenancy: load urls: %w", err)
	}
	var out URLs
	for _, r := range rows {
		if r.Kind == models.AppURLOrigin {
			out.Origins = append(out.Origins, r.Value)
		} else {
			out.ReturnURLs = append(out.ReturnURLs, r.Value)
		}
	}
	return out, nil
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		s = strings.TrimSpace(s)
		if s == "" || seen[s] {
			continue
		}
		seen[s] = true
		out = append(out, s)
	}
	return out
}

// isLoopbackHost allows plain http for local development only.
func isLoopbackHost(h string) bool {
	return h == "localhost" || h == "127.0.0.1" || h == "[::1]" || h == "::1"
}

// checkOrigin accepts scheme://host[:port] exactly as browsers serialize it.
func checkOrigin(o string) string {
	u, err := url.Parse(o)
	if err != nil || u.Host == "" {
		return fmt.Sprintf("%q is not an origin (scheme://host[:port])", o)
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && isLoopbackHost(u.Hostname())) {
		return fmt.Sprintf("%q must use https (http only for localhost)", o)
	}
	if u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Sprintf("%q must not have a path, query, fragment or user info", o)
	}
	if strings.ToLower(o) != o {
		return fmt.Sprintf("%q must be lower case, as browsers send it", o)
	}
	return ""
}

func checkReturnURL(r string) string {
	u, err := url.Parse(r)
	if err != nil || u.Host == "" {
		return fmt.Sprintf("%q is not an absolute URL", r)
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && isLoopbackHost(u.Hostname())) {
		return fmt.Sprintf("%q must use https (http only for localhost)", r)
	}
	if u.Fragment != "" || u.User != nil {
		return fmt.Sprintf("%q must not have a fragment or user info", r)
	}
	return ""
}
