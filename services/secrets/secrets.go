// Package secrets manages operator-provisioned managed secrets (DESIGN.md
// §1): backend credentials such as API keys with an injection rule and an
// allowed-hosts list, bound to principals through grants.
//
// A managed secret is two rows: managed_secrets holds its name, injection
// template and allowed hosts; the credentials row pointing back at it holds
// the value, sealed in access_token_ciphertext. Grants point at that
// credential, so rotating the value changes no grant. The value is
// write-only: nothing here returns, logs or echoes it, and validation
// messages never quote it.
package secrets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/services/apikeys"
	"github.com/latchkey/latchkey/services/audit"
	"github.com/latchkey/latchkey/services/egress"
	"github.com/latchkey/latchkey/services/errs"
	"github.com/latchkey/latchkey/services/grants"
	"github.com/latchkey/latchkey/services/ids"
	"github.com/latchkey/latchkey/services/vault"
)

// Audit actions written by this package. They live here because
// services/audit is owned elsewhere; the strings are the contract.
const (
	ActionSecretCreate = "secret.create"
	ActionSecretRotate = "secret.rotate"
)

// Limits on input.
const (
	MaxValueBytes       = 16 << 10
	MaxDescriptionLen   = 500
	MaxAllowedHosts     = 50
	MaxPrincipalNameLen = 255
)

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Sealer seals values; *vault.Vault implements it.
type Sealer interface {
	Seal(ctx context.Context, b vault.Binding, plaintext []byte) ([]byte, error)
}

// Service creates, rotates and grants managed secrets.
type Service struct {
	db    *gorm.DB
	vault Sealer
	audit *audit.Log
	now   func() time.Time
	// changed is called after every committed change of who may use what,
	// so caches of resolved grants (services/proxy) drop their entries.
	changed func()
}

// Option tunes the service.
type Option func(*Service)

// WithOnChange registers fn to run after every committed change.
func WithOnChange(fn func()) Option { return func(s *Service) { s.changed = fn } }

// New builds the service. now nil means time.Now.
func New(db *gorm.DB, v Sealer, a *audit.Log, now func() time.Time, opts ...Option) *Service {
	if now == nil {
		now = time.Now
	}
	s := &Service{db: db, vault: v, audit: a, now: now, changed: func() {}}
	for _, o := range opts {
		o(s)
	}
	return s
}

// CreateInput describes a new managed secret. Value is write-only.
type CreateInput struct {
	AppID        string
	Name         string
	Description  string
	Value        string
	Injection    string // e.g. "header:Authorization:Bearer {secret}"
	AllowedHosts []string
	Actor        apikeys.Actor
}

// Create stores a managed secret and its sealed credential, with a
// secret.create audit row, in one transaction, and returns the managed
// secret's id. Grants select it as provider "secret:<name>".
func (s *Service) Create(ctx context.Context, in CreateInput) (string, error) {
	var v errs.Validation
	if _, err := uuid.Parse(in.AppID); err != nil {
		v.Add("app", "must be an app id (UUID)")
	}
	in.Name = strings.TrimSpace(in.Name)
	if !nameRE.MatchString(in.Name) {
		v.Add("name", "must be 1-63 lower-case letters, digits, dashes or underscores, starting with a letter or digit")
	}
	in.Description = strings.TrimSpace(in.Description)
	if utf8.RuneCountInString(in.Description) > MaxDescriptionLen {
		v.Add("description", "must be at most %d characters", MaxDescriptionLen)
	}
	checkValue(&v, in.Value)
	// The egress service applies the template when it proxies, so its parser
	// decides what is valid. Its messages never quote the template (an
	// operator may have pasted the secret itself into it).
	if in.Injection == "" {
		v.Add("inject", "is required, e.g. header:Authorization:Bearer {secret} or query:api_key:{secret}")
	} else if inj, err := egress.ParseInjection(in.Injection); err != nil {
		addProblems(&v, "inject", err)
	} else {
		in.Injection = inj.String()
	}
	hosts, err := allowedHosts(in.AllowedHosts)
	if err != nil {
		v.Add("allowed-host", "%s", err.Error())
	}
	if err := v.Err(); err != nil {
		return "", err
	}

	db := s.db.WithContext(ctx)
	app, err := s.app(ctx, in.AppID)
	if err != nil {
		return "", err
	}
	// Checked before sealing so a duplicate name writes nothing at all (a
	// first Seal would create the app's keyring); the unique index still
	// decides a race.
	var n int64
	if err := db.Model(&models.ManagedSecret{}).Where("app_id = ? AND name = ?", app.ID, in.Name).Count(&n).Error; err != nil {
		return "", fmt.Errorf("secrets: check name: %w", err)
	}
	if n > 0 {
		return "", duplicateName(in.Name)
	}
	hostsJSON, err := json.Marshal(hosts)
	if err != nil {
		return "", fmt.Errorf("secrets: encode allowed hosts: %w", err)
	}
	secretID, err := ids.New()
	if err != nil {
		return "", err
	}
	credID, err := ids.New()
	if err != nil {
		return "", err
	}
	sealed, err := s.seal(ctx, app.ID, credID, in.Value)
	if err != nil {
		return "", err
	}
	now := s.now().UTC()
	ms := models.ManagedSecret{ID: secretID, AppID: app.ID, Name: in.Name, Description: in.Description,
		Injection: in.Injection, AllowedHosts: string(hostsJSON), CreatedAt: now, UpdatedAt: now}
	cred := models.Credential{ID: credID, AppID: app.ID, Kind: models.CredentialManagedSecret,
		ManagedSecretID: &secretID, AccessTokenCiphertext: sealed, Version: 1,
		RefreshState: models.RefreshIdle, CreatedAt: now, UpdatedAt: now}
	err = db.Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(&ms).Error; err != nil {
			if errors.Is(err, gorm.ErrDuplicatedKey) {
				return duplicateName(in.Name)
			}
			return fmt.Errorf("secrets: insert managed secret: %w", err)
		}
		if err := tx.Create(&cred).Error; err != nil {
			return fmt.Errorf("secrets: insert credential: %w", err)
		}
		return s.audit.InTx(ctx, tx, models.AuditEvent{OrganizationID: app.OrganizationID, AppID: app.ID,
			Action: ActionSecretCreate, ActorKind: in.Actor.Kind, ActorID: in.Actor.ID,
			Provider: grants.SecretProvider(in.Name),
			Context:  audit.EncodeContext(map[string]string{"managed_secret_id": secretID, "name": in.Name})})
	})
	if err != nil {
		return "", err
	}
	return secretID, nil
}

// Rotate replaces the value of a managed secret of app appID. The value is
// re-sealed into the same credential row, so every grant keeps its id and
// its next use sees the new value; the credential's version is bumped and
// the secret's rotated_at set, with a secret.rotate audit row.
func (s *Service) Rotate(ctx context.Context, appID, secretID, newValue string, actor apikeys.Actor) error {
	err := s.rotate(ctx, appID, secretID, newValue, actor)
	if err == nil {
		s.changed()
	}
	return err
}

func (s *Service) rotate(ctx context.Context, appID, secretID, newValue string, actor apikeys.Actor) error {
	var v errs.Validation
	if _, err := uuid.Parse(appID); err != nil {
		v.Add("app", "must be an app id (UUID)")
	}
	checkValue(&v, newValue)
	if err := v.Err(); err != nil {
		return err
	}
	app, err := s.app(ctx, appID)
	if err != nil {
		return err
	}
	ms, cred, err := s.load(ctx, s.db.WithContext(ctx), app.ID, secretID)
	if err != nil {
		return err
	}
	sealed, err := s.seal(ctx, app.ID, cred.ID, newValue)
	if err != nil {
		return err
	}
	now := s.now().UTC()
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&models.Credential{}).Where("id = ? AND app_id = ?", cred.ID, app.ID).
			Updates(map[string]any{"access_token_ciphertext": sealed, "version": gorm.Expr("version + 1"), "updated_at": now})
		if res.Error != nil {
			return fmt.Errorf("secrets: update credential: %w", res.Error)
		}
		if res.RowsAffected != 1 {
			return fmt.Errorf("managed secret: %w", errs.ErrNotFound)
		}
		if err := tx.Model(&models.ManagedSecret{}).Where("id = ?", ms.ID).
			Updates(map[string]any{"rotated_at": now, "updated_at": now}).Error; err != nil {
			return fmt.Errorf("secrets: update managed secret: %w", err)
		}
		return s.audit.InTx(ctx, tx, models.AuditEvent{OrganizationID: app.OrganizationID, AppID: app.ID,
			Action: ActionSecretRotate, ActorKind: actor.Kind, ActorID: actor.ID,
			Provider: grants.SecretProvider(ms.Name),
			Context:  audit.EncodeContext(map[string]string{"managed_secret_id": ms.ID, "name": ms.Name})})
	})
}

// AppOf returns the app a managed secret belongs to. It is not tenant
// scoped: it exists for operator tooling (the admin CLI's `secrets grant
// --secret ID`), which has no app context; SDK handlers already know the
// caller's app and must not use it.
func (s *Service) AppOf(ctx context.Context, secretID string) (string, error) {
	if _, ok := ids.Canonical(secretID); !ok {
		return "", errs.Invalid("secret", "must be a managed secret id (UUID)")
	}
	var ms models.ManagedSecret
	err := s.db.WithContext(ctx).Select("id", "app_id").Where("id = ?", strings.ToLower(secretID)).Take(&ms).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return "", fmt.Errorf("managed secret: %w", errs.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("secrets: load managed secret: %w", err)
	}
	return ms.AppID, nil
}

// load reads a managed secret of the app and its credential. Another app's
// secret and a malformed id are both not found.
func (s *Service) load(ctx context.Context, db *gorm.DB, appID, secretID string) (models.ManagedSecret, models.Credential, error) {
	var ms models.ManagedSecret
	var cred models.Credential
	id, ok := ids.Canonical(secretID)
	if !ok {
		return ms, cred, fmt.Errorf("managed secret: %w", errs.ErrNotFound)
	}
	db = db.WithContext(ctx)
	err := db.Where("id = ? AND app_id = ?", id, appID).Take(&ms).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return ms, cred, fmt.Errorf("managed secret: %w", errs.ErrNotFound)
	}
	if err != nil {
		return ms, cred, fmt.Errorf("secrets: load managed secret: %w", err)
	}
	// Only the columns needed: the sealed value stays in the database.
	err = db.Clauses(clause.Locking{Strength: "UPDATE"}).Select("id", "app_id", "kind", "managed_secret_id", "version").
		Where("managed_secret_id = ? AND app_id = ?", ms.ID, appID).Take(&cred).Error
	if err != nil {
		return ms, cred, fmt.Errorf("secrets: load credential of managed secret %s: %w", ms.ID, err)
	}
	return ms, cred, nil
}

func (s *Service) app(ctx context.Context, appID string) (models.App, error) {
	var app models.App
	err := s.db.WithContext(ctx).Where("id = ?", strings.ToLower(appID)).Take(&app).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return app, fmt.Errorf("app: %w", errs.ErrNotFound)
	}
	if err != nil {
		return app, fmt.Errorf("secrets: load app: %w", err)
	}
	return app, nil
}

func (s *Service) seal(ctx context.Context, appID, credID, value string) ([]byte, error) {
	pt := []byte(value)
	defer clear(pt)
	sealed, err := s.vault.Seal(ctx, grants.AccessTokenBinding(appID, credID), pt)
	if err != nil {
		return nil, fmt.Errorf("secrets: seal value: %w", err)
	}
	return sealed, nil
}

// checkValue validates a secret value without ever quoting it. Control
// characters are refused because the value is placed into headers and
// query strings, where CR/LF would split the request.
func checkValue(v *errs.Validation, value string) {
	switch {
	case value == "":
		v.Add("value", "is required")
	case len(value) > MaxValueBytes:
		v.Add("value", "must be at most %d bytes", MaxValueBytes)
	case !utf8.ValidString(value) || strings.ContainsFunc(value, isControl):
		v.Add("value", "must be printable text without control characters (the value is not shown)")
	}
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// addProblems copies a validation error's problems into v (or records err
// under field when it is not one).
func addProblems(v *errs.Validation, field string, err error) {
	var ve *errs.ValidationError
	if !errors.As(err, &ve) {
		v.Add(field, "%s", err.Error())
		return
	}
	for _, p := range ve.Problems {
		v.Add(p.Field, "%s", p.Message)
	}
}

// allowedHosts validates and canonicalises the allowed-hosts list with the
// egress service's parser, so what is stored is exactly what egress matches.
func allowedHosts(entries []string) ([]string, error) {
	if len(entries) == 0 {
		return nil, errors.New("at least one allowed host is required (egress is closed by default)")
	}
	if len(entries) > MaxAllowedHosts {
		return nil, fmt.Errorf("at most %d allowed hosts", MaxAllowedHosts)
	}
	var problems []string
	out := make([]string, 0, len(entries))
	seen := map[string]bool{}
	for _, e := range entries {
		p, err := egress.ParseHostPattern(strings.TrimSpace(e))
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		if c := p.String(); !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	return out, nil
}

func duplicateName(name string) error {
	return fmt.Errorf("a managed secret named %q already exists in this app: %w", name, errs.ErrConflict)
}
