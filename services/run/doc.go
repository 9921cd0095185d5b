// Package run is the run service: the agent graph (load session, retrieve, generate,
// persist, speak) streamed as typed events, sessions and their messages, spoken answers.
//
// Where things are: server.go (every RPC), agent.go (the graph and its nodes),
// events.go, store.go, config.go, migrations/; backends.go chooses the generator
// (generators/: extractive, Vertex AI) and the speech backend (speech/: OpenAI, fake).
package run
