package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/tessera-cdp/tessera/config"
)

func newProfileCmd() *cobra.Command {
	var (
		file, addr string
		limit      int
	)
	cmd := &cobra.Command{
		Use:   "profile",
		Short: "Look up customer profiles in a running tessera",
		Long: `Look up customer profiles through the profile API of a running tessera
(any instance: it forwards to the one that owns the profile). The admin token
comes from $TESSERA_ADMIN_TOKEN or api.admin_token in the config file.`,
	}
	fetch := func(cmd *cobra.Command, path string) error {
		cfg, err := loadConfig(file, config.Overrides{HTTPListen: addr})
		if err != nil {
			return err
		}
		client, scheme, err := apiClient(cfg.HTTP.TLS)
		if err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(cmd.Context(), http.MethodGet, scheme+"://"+cfg.HTTP.Listen+path, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+cfg.API.AdminToken)
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("asking tessera at %s: %w", cfg.HTTP.Listen, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return fmt.Errorf("reading the answer: %w", err)
		}
		if resp.StatusCode != http.StatusOK {
			var e struct{ Error string }
			if json.Unmarshal(body, &e) == nil && e.Error != "" {
				return fmt.Errorf("%s (HTTP %d)", e.Error, resp.StatusCode)
			}
			return fmt.Errorf("HTTP %d: %s", resp.StatusCode, body)
		}
		var out bytes.Buffer
		if err := json.Indent(&out, body, "", "  "); err != nil {
			return fmt.Errorf("decoding the answer: %w", err)
		}
		out.WriteByte('\n')
		_, err = out.WriteTo(cmd.OutOrStdout())
		return err
	}
	get := &cobra.Command{
		Use:     "get TYPE:VALUE",
		Short:   "Print the profile that holds an identifier, as JSON",
		Example: "  tessera profile get email:jane@example.com\n  tessera profile get user_id:abc123 --http 127.0.0.1:8081",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return fetch(cmd, "/v1/profiles/"+url.PathEscape(args[0]))
		},
	}
	events := &cobra.Command{
		Use:     "events TYPE:VALUE",
		Short:   "Print the profile's most recent events, newest first",
		Example: "  tessera profile events user_id:abc123 --limit 10",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return fetch(cmd, fmt.Sprintf("/v1/profiles/%s/events?limit=%d", url.PathEscape(args[0]), limit))
		},
	}
	events.Flags().IntVar(&limit, "limit", 20, "how many events, from 1 to 1000")
	for _, c := range []*cobra.Command{get, events} {
		c.Flags().StringVarP(&file, "config", "c", "", "configuration file (YAML), for http.listen and api.admin_token")
		c.Flags().StringVar(&addr, "http", "", "HTTP address of a running tessera, overriding http.listen")
		cmd.AddCommand(c)
	}
	return cmd
}

// apiClient returns the client and scheme that reach tessera's API: HTTPS when
// http.tls is set, trusting the system's roots and the server's own
// certificate (so a self-signed one works).
func apiClient(t config.HTTPTLS) (*http.Client, string, error) {
	c := &http.Client{Timeout: 30 * time.Second}
	if !t.Enabled() {
		return c, "http", nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	pem, err := os.ReadFile(t.CertFile)
	if err != nil {
		return nil, "", fmt.Errorf("reading http.tls.cert_file: %w", err)
	}
	pool.AppendCertsFromPEM(pem)
	// A certificate signed by http.tls.ca_file's CAs, as every instance
	// of a group may present, is trusted too.
	if t.CAFile != "" {
		ca, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, "", fmt.Errorf("reading http.tls.ca_file: %w", err)
		}
		pool.AppendCertsFromPEM(ca)
	}
	c.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	return c, "https", nil
}
