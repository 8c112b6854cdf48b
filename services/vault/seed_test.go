package vault

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"gocloud.dev/secrets"
	"gocloud.dev/secrets/localsecrets"
	"gorm.io/gorm"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// testTTL and testGrace keep rotation's wait for replicas short in tests.
const (
	testTTL   = 20 * time.Millisecond
	testGrace = 3 * testTTL
)

func newID(t testing.TB) string {
	t.Helper()
	id, err := uuid.NewV7()
	if err != nil {
		t.Fatal(err)
	}
	return id.String()
}

// newKeeper returns a local keeper with a fresh random key and its
// base64key:// URL.
func newKeeper(t testing.TB) (*secrets.Keeper, string) {
	t.Helper()
	key, err := localsecrets.NewRandomKey()
	if err != nil {
		t.Fatal(err)
	}
	u := "base64key://" + base64.URLEncoding.EncodeToString(key[:])
	k := localsecrets.NewKeeper(key)
	t.Cleanup(func() { _ = k.Close() })
	return k, u
}

func newVault(t testing.TB, db *gorm.DB, keeper *secrets.Keeper, opts ...Option) *Vault {
	t.Helper()
	return New(db, keeper, append([]Option{WithCacheTTL(testTTL), WithRotationGrace(testGrace)}, opts...)...)
}

func seedOrg(t testing.TB, db *gorm.DB) string {
	t.Helper()
	now := time.Now().UTC()
	o := models.Organization{ID: newID(t), Name: "org-" + newID(t), CreatedAt: now, UpdatedAt: now}
	if err := db.Create(&o).Error; err != nil {
		t.Fatal(err)
	}
	return o.ID
}

func seedApp(t testing.TB, db *gorm.DB, orgID string) string {
	t.Helper()
	now := time.Now().UTC()
	a := models.App{ID: newID(t), OrganizationID: orgID, Name: "app-" + newID(t), CreatedAt: now, UpdatedAt: now}
	if err := db.Create(&a).Error; err != nil {
		t.Fatal(err)
	}
	return a.ID
}

// sealed is one stored secret: where it lives and what it must open to.
type sealed struct {
	b     Binding
	plain []byte
}

func mustSeal(t testing.TB, v *Vault, b Binding, plain string) []byte {
	t.Helper()
	ct, err := v.Seal(context.Background(), b, []byte(plain))
	if err != nil {
		t.Fatalf("seal %s.%s: %v", b.Table, b.Column, err)
	}
	return ct
}

// seedSecrets inserts rows holding a value in every sealed column for app
// (credentials: n rows) and returns what each must open to.
func seedSecrets(t testing.TB, db *gorm.DB, v *Vault, appID string, n int) []sealed {
	t.Helper()
	now := time.Now().UTC()
	var out []sealed
	seal := func(table, column, rowID string) []byte {
		b := Binding{AppID: appID, Table: table, RowID: rowID, Column: column}
		plain := fmt.Sprintf("secret %s.%s %s", table, column, rowID)
		out = append(out, sealed{b: b, plain: []byte(plain)})
		return mustSeal(t, v, b, plain)
	}
	create := func(row any) {
		t.Helper()
		if err := db.Create(row).Error; err != nil {
			t.Fatalf("seed %T: %v", row, err)
		}
	}

	key := models.APIKey{ID: newID(t), KeyID: "lk_app_" + newID(t), AppID: appID, Kind: models.KeyKindApp,
		Status: models.KeyActive, CreatedAt: now, UpdatedAt: now}
	key.SigningKeyCiphertext = seal("api_keys", "signing_key_ciphertext", key.ID)
	create(&key)

	idp := models.IdentityProvider{ID: newID(t), AppID: appID, Issuer: "https://idp.example", Audience: "aud",
		UserClaim: "sub", Preset: "generic", CreatedAt: now, UpdatedAt: now}
	idp.ClientSecretCiphertext = seal("identity_providers", "client_secret_ciphertext", idp.ID)
	create(&idp)

	pc := models.ProviderConfig{ID: newID(t), AppID: appID, Provider: "github", ClientID: "cid",
		Status: models.ProviderConfigActive, CreatedAt: now, UpdatedAt: now}
	pc.ClientSecretCiphertext = seal("provider_configs", "client_secret_ciphertext", pc.ID)
	create(&pc)

	var firstCred string
	for i := range n {
		c := models.Credential{ID: newID(t), AppID: appID, Kind: models.CredentialOAuth, ProviderConfigID: &pc.ID,
			AccountIdentifier: fmt.Sprintf("acct-%d", i), Version: 1, RefreshState: models.RefreshIdle,
			CreatedAt: now, UpdatedAt: now}
		c.AccessTokenCiphertext = seal("credentials", "access_token_ciphertext", c.ID)
		c.RefreshTokenCiphertext = seal("credentials", "refresh_token_ciphertext", c.ID)
		create(&c)
		if firstCred == "" {
			firstCred = c.ID
		}
	}
	// A credential without a refresh token: NULL values are skipped.
	bare := models.Credential{ID: newID(t), AppID: appID, Kind: models.CredentialOAuth, ProviderConfigID: &pc.ID,
		Version: 1, RefreshState: models.RefreshIdle, CreatedAt: now, UpdatedAt: now}
	bare.AccessTokenCiphertext = seal("credentials", "access_token_ciphertext", bare.ID)
	create(&bare)

	cs := models.ConnectSession{ID: newID(t), AppID: appID, TokenHash: newID(t), PrincipalKind: models.PrincipalSystem,
		AllowedProviders: "[]", Metadata: "{}", ResultGrants: "[]", Status: models.ConnectPending,
		ExpiresAt: now.Add(time.Hour), CreatedAt: now, UpdatedAt: now}
	create(&cs)
	flow := models.OAuthFlow{ID: newID(t), AppID: appID, ConnectSessionID: cs.ID, ProviderConfigID: pc.ID,
		StateHash: newID(t), BrowserBindingHash: "h", RedirectURI: "https://x/cb", ExpiresAt: now.Add(time.Hour), CreatedAt: now}
	flow.PKCEVerifierSealed = seal("oauth_flows", "pkce_verifier_sealed", flow.ID)
	create(&flow)

	if firstCred != "" {
		g := models.Grant{ID: newID(t), AppID: appID, CredentialID: &firstCred, PrincipalKind: models.PrincipalSystem,
			Provider: "github", Status: models.GrantActive, Metadata: "{}", CreatedAt: now, UpdatedAt: now}
		create(&g)
		ap := models.Approval{ID: newID(t), AppID: appID, GrantID: g.ID, KeyID: key.KeyID, Status: models.ApprovalExecuted,
			Method: "GET", Host: "api.github.com", Path: "/user", Context: "{}", ExpiresAt: now.Add(time.Hour),
			CreatedAt: now, UpdatedAt: now}
		ap.RequestSealed = seal("approvals", "request_sealed", ap.ID)
		ap.ResultSealed = seal("approvals", "result_sealed", ap.ID)
		create(&ap)
	}
	return out
}

// stored reads the current ciphertext of one sealed value.
func stored(t testing.TB, db *gorm.DB, b Binding) []byte {
	t.Helper()
	var rows []sealedRow
	err := db.Table(b.Table).Select(b.Column+" AS val").Where("id = ?", b.RowID).Scan(&rows).Error
	if err != nil || len(rows) != 1 {
		t.Fatalf("read %s.%s row %s: %v (%d rows)", b.Table, b.Column, b.RowID, err, len(rows))
	}
	return rows[0].Val
}

// assertReadable opens every value as stored now and compares plaintexts.
// It also returns the versions the values use.
func assertReadable(t testing.TB, db *gorm.DB, v *Vault, want []sealed) map[uint32]int {
	t.Helper()
	versions := map[uint32]int{}
	for _, s := range want {
		ct := stored(t, db, s.b)
		got, err := v.Open(context.Background(), s.b, ct)
		if err != nil {
			t.Errorf("open %s.%s row %s: %v", s.b.Table, s.b.Column, s.b.RowID, err)
			continue
		}
		if string(got) != string(s.plain) {
			t.Errorf("%s.%s row %s opened to the wrong plaintext", s.b.Table, s.b.Column, s.b.RowID)
		}
		ver, _ := parseVersion(ct)
		versions[ver]++
	}
	return versions
}

type keyRow struct {
	Version int
	Status  string
}

func keyring(t testing.TB, db *gorm.DB, appID string) []keyRow {
	t.Helper()
	var rows []keyRow
	if err := db.Model(&models.DataKey{}).Select("version, status").Where("app_id = ?", appID).Order("version").Scan(&rows).Error; err != nil {
		t.Fatal(err)
	}
	return rows
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}
