// Package retrieval is the retrieval service: it owns the tenant's corpora and chunk
// index (schema retrieval) and routes each retrieval to the corpus's provider.
//
// Where things are: server.go (every RPC), store.go and index.go (the corpora and the
// chunk index), config.go, migrations/; backends.go chooses the embedder and builds the
// router (router.go), which puts the local index (local.go) beside the cloud providers
// of providers/ behind one interface and applies the external-call policy to them.
package retrieval
