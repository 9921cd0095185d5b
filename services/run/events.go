package run

import (
	"google.golang.org/protobuf/proto"

	retrievalv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/retrieval/v1"
	runv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/run/v1"
	"github.com/nexusrag/nexusrag/services/run/generators"
)

// emitter sends one event of a run's stream.
type emitter func(*runv1.RunResponse) error

// The events of a run, in the order they can come (run.proto has their shapes).

func acceptedEvent(s *State) *runv1.RunResponse {
	return &runv1.RunResponse{Event: &runv1.RunResponse_Accepted{Accepted: &runv1.Accepted{
		RunId: s.RunID.String(), SessionId: s.SessionID, CorpusId: s.CorpusID}}}
}

// debugRetrievalEvent shows the passages and, for a local corpus, the ranking settings applied.
func debugRetrievalEvent(provider string, passages []generators.Passage, ranking *retrievalv1.RankingSettings) *runv1.RunResponse {
	chunks := make([]*runv1.DebugChunk, len(passages))
	for i, p := range passages {
		chunks[i] = &runv1.DebugChunk{DocumentId: p.DocumentID, ChunkId: p.ChunkID, Score: p.Score, Text: p.Text}
	}
	ev := &runv1.DebugRetrieval{Provider: provider, Chunks: chunks}
	if ranking != nil {
		ev.Ranking = &runv1.DebugRanking{LexicalWeight: ranking.GetLexicalWeight(), VectorWeight: ranking.GetVectorWeight(),
			CandidateDepth: ranking.GetCandidateDepth(), Feedback: ranking.GetFeedback()}
	}
	return &runv1.RunResponse{Event: &runv1.RunResponse_DebugRetrieval{DebugRetrieval: ev}}
}

func tokenDeltaEvent(text string) *runv1.RunResponse {
	return &runv1.RunResponse{Event: &runv1.RunResponse_TokenDelta{TokenDelta: &runv1.TokenDelta{Text: text}}}
}

func finalEvent(s *State) *runv1.RunResponse {
	cites := make([]*runv1.Citation, len(s.Citations))
	for i, c := range s.Citations {
		cites[i] = &runv1.Citation{Marker: int32(c.Marker), DocumentId: c.DocumentID, ChunkId: c.ChunkID, Score: c.Score, Section: c.Section}
		if c.Page > 0 {
			cites[i].Page = proto.Int32(int32(c.Page))
		}
	}
	return &runv1.RunResponse{Event: &runv1.RunResponse_Final{Final: &runv1.Final{
		Text: s.Answer, Citations: cites, SessionId: s.SessionID, Provider: s.Provider}}}
}

func audioReadyEvent(id, url string) *runv1.RunResponse {
	return &runv1.RunResponse{Event: &runv1.RunResponse_AudioReady{AudioReady: &runv1.AudioReady{AudioId: id, AudioUrl: url, Mime: "audio/mpeg"}}}
}

func audioErrorEvent(code, message string) *runv1.RunResponse {
	return &runv1.RunResponse{Event: &runv1.RunResponse_AudioError{AudioError: &runv1.AudioError{Code: code, Message: message}}}
}

func failureEvent(code, message string) *runv1.RunResponse {
	return &runv1.RunResponse{Event: &runv1.RunResponse_Error{Error: &runv1.Failure{Code: code, Message: message}}}
}

func doneEvent() *runv1.RunResponse {
	return &runv1.RunResponse{Event: &runv1.RunResponse_Done{Done: &runv1.Done{}}}
}
