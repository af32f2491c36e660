/// A tiny HF checkpoint the serving tests write for themselves (fresh clone, no downloads): a
/// byte-level BPE tokenizer of the 256 bytes plus Qwen's three special tokens and a Qwen2.5-style
/// ChatML template, and a 2-layer GQA decoder over it; plus helpers to run `simko serve` on an
/// ephemeral loopback port and to post JSON to it.
module SimKO.Tests.ServeFixture

open System
open System.IO
open System.Net.Http
open System.Text
open System.Text.Json.Nodes
open TorchSharp
open Microsoft.Extensions.Logging.Abstractions
open SimKO.Data.Tokenizers
open SimKO.Host.Model
open SimKO.Host.Checkpoints
open SimKO.Host.Serving

/// GPT-2's map from bytes to printable characters, in which byte-level vocabularies are written.
let private byteChars =
    let printable = [ 33 .. 126 ] @ [ 161 .. 172 ] @ [ 174 .. 255 ]
    let mutable extra = 0
    [| for b in 0 .. 255 ->
         if List.contains b printable then string (char b)
         else
             extra <- extra + 1
             string (char (255 + extra)) |]

/// A Qwen2.5-style template: a default system message when none is given, ChatML blocks, the generation prompt.
let qwenTemplate =
    "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    + "{%- else %}{{- '<|im_start|>system\\nYou are a tiny test model.<|im_end|>\\n' }}{%- endif %}"
    + "{%- for message in messages %}{%- if not (message.role == 'system' and loop.first) %}"
    + "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}{%- endif %}{%- endfor %}"
    + "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"

let private writeTokenizer (dir: string) =
    Directory.CreateDirectory dir |> ignore
    let vocab = JsonObject()
    byteChars |> Array.iteri (fun i c -> vocab[c] <- JsonValue.Create i)
    let added = JsonArray()
    for id, content in [ 256, "<|endoftext|>"; 257, "<|im_start|>"; 258, "<|im_end|>" ] do
        added.Add(JsonObject(dict [ "id", JsonValue.Create id :> JsonNode; "content", JsonValue.Create content; "special", JsonValue.Create true ]))
    let tok = JsonObject()
    tok["model"] <- JsonObject(dict [ "type", JsonValue.Create "BPE" :> JsonNode; "vocab", vocab; "merges", JsonArray() ])
    tok["added_tokens"] <- added
    tok["pre_tokenizer"] <- JsonObject(dict [ "type", JsonValue.Create "ByteLevel" :> JsonNode; "add_prefix_space", JsonValue.Create false; "use_regex", JsonValue.Create true ])
    File.WriteAllText(Path.Combine(dir, "tokenizer.json"), tok.ToJsonString())
    let cfg = JsonObject()
    cfg["eos_token"] <- JsonValue.Create "<|im_end|>"
    cfg["pad_token"] <- JsonValue.Create "<|endoftext|>"
    cfg["chat_template"] <- JsonValue.Create qwenTemplate
    File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), cfg.ToJsonString())

let root = Path.Combine(Path.GetTempPath(), sprintf "simko-serve-tests-%d" Environment.ProcessId)

/// Write a tiny model folder with weights from <seed>; returns its path.
let writeModel (name: string) (seed: int64) =
    let tokDir = Path.Combine(root, "tokenizer")
    if not (File.Exists(Path.Combine(tokDir, "tokenizer.json"))) then writeTokenizer tokDir
    let tok = HfBpeTokenizer.FromFolder tokDir
    use model = new CausalLM(ModelConfig.Tiny(tok.VocabSize, dModel = 32, layers = 2, heads = 4, kvHeads = 2, maxPositions = 128))
    model.InitWeights seed
    // larger weights than HF's init give peaked next-token distributions (greedy ties are unlikely)
    use _ = torch.no_grad()
    for struct (_, p) in model.NamedParameters() do
        if p.dim() = 2L then p.mul_(torch.tensor(25.0f)) |> ignore
    let dir = Path.Combine(root, name)
    HfFolder.Save(model, tok, dir)
    dir

/// The served checkpoint (written once per test run).
let tinyModel = lazy (writeModel "tiny" 11L)

let loadModel (dir: string) =
    let m = HfFolder.LoadModel(dir, torch.CPU, torch.ScalarType.Float32)
    m.eval() |> ignore
    m

/// Run <f> against `simko serve` of the tiny model on 127.0.0.1 with an ephemeral port; the server stops afterwards.
let withServer (options: ServeOptions) (f: SimkoServer -> CausalLM -> unit) =
    let dir = tinyModel.Force()
    let tok = HfFolder.LoadTokenizer dir
    use model = loadModel dir
    let server = SimkoServer.StartAsync(model, tok, ChatMarkup.FromFolder(dir, tok), "tiny", options, NullLogger.Instance).GetAwaiter().GetResult()
    try f server model
    finally server.DisposeAsync().AsTask().GetAwaiter().GetResult()

let options = ServeOptions(Host = "127.0.0.1", Port = 0)

/// POST a raw body; returns (status, parsed JSON body, Retry-After or null). A fresh client each
/// time: a pooled keep-alive connection could point at an earlier test's server on a reused port.
let post (url: string) (body: string) (key: string option) =
    use http = new HttpClient(Timeout = TimeSpan.FromSeconds 60.0)
    use req = new HttpRequestMessage(HttpMethod.Post, url, Content = new StringContent(body, Encoding.UTF8, "application/json"))
    key |> Option.iter (fun k -> req.Headers.Authorization <- Headers.AuthenticationHeaderValue("Bearer", k))
    use resp = http.Send req
    let text = resp.Content.ReadAsStringAsync().GetAwaiter().GetResult()
    let retry = match resp.Headers.RetryAfter with null -> null | r -> string r
    int resp.StatusCode, (try JsonNode.Parse text with _ -> JsonValue.Create text :> JsonNode), retry

let json (o: (string * JsonNode) list) = JsonObject(dict o).ToJsonString()
let ints (xs: int seq) = JsonArray(xs |> Seq.map (fun x -> JsonValue.Create x :> JsonNode) |> Array.ofSeq) :> JsonNode
let jv (x: 'a) = JsonValue.Create x :> JsonNode
