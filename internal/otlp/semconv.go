package otlp

// The attribute names the mapping reads, one constant each: the
// OpenTelemetry semantic conventions for generative AI (gen_ai.*, with
// their general attributes) and OpenInference's. The mapping tables of
// mapping.go name them; docs/development/ingestion.md lists the tables.

// OpenTelemetry GenAI semantic conventions.
const (
	AttrGenAIOperationName     = "gen_ai.operation.name"
	AttrGenAIAgentName         = "gen_ai.agent.name"
	AttrGenAIRequestModel      = "gen_ai.request.model"
	AttrGenAIResponseModel     = "gen_ai.response.model"
	AttrGenAIUsageInputTokens  = "gen_ai.usage.input_tokens"
	AttrGenAIUsageOutputTokens = "gen_ai.usage.output_tokens"
	AttrGenAIToolName          = "gen_ai.tool.name"
	AttrGenAIToolCallArguments = "gen_ai.tool.call.arguments"
	AttrGenAIToolCallResult    = "gen_ai.tool.call.result"
	AttrGenAIInputMessages     = "gen_ai.input.messages"
	AttrGenAIOutputMessages    = "gen_ai.output.messages"
	// AttrEndUserID is the general convention's end user.
	AttrEndUserID = "enduser.id"
	// AttrErrorType is the general convention's error class, the error of
	// a failed span whose status has no message.
	AttrErrorType = "error.type"
	// AttrServiceName is the resource attribute naming the service.
	AttrServiceName = "service.name"
)

// The GenAI operation names (values of gen_ai.operation.name) the mapping
// tells apart; any other is a step of its own type.
const (
	OpInvokeAgent     = "invoke_agent"
	OpExecuteTool     = "execute_tool"
	OpChat            = "chat"
	OpTextCompletion  = "text_completion"
	OpGenerateContent = "generate_content"
	OpEmbeddings      = "embeddings"
)

// OpenInference semantic conventions.
const (
	AttrOISpanKind        = "openinference.span.kind"
	AttrOILLMModelName    = "llm.model_name"
	AttrOITokenPrompt     = "llm.token_count.prompt"
	AttrOITokenCompletion = "llm.token_count.completion"
	AttrOIToolName        = "tool.name"
	AttrOIInputValue      = "input.value"
	AttrOIOutputValue     = "output.value"
	AttrOIUserID          = "user.id"
	AttrOIAgentName       = "agent.name"
)

// The OpenInference span kinds (values of openinference.span.kind) the
// mapping tells apart; any other (CHAIN, RETRIEVER, EMBEDDING, RERANKER,
// GUARDRAIL, EVALUATOR, …) is a step of its own type.
const (
	KindOIAgent = "AGENT"
	KindOITool  = "TOOL"
	KindOILLM   = "LLM"
)
