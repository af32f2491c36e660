/// Chat for `simko serve` (issue 23 §3, issue 24 item 8): the model's chat template checked at startup.
/// A ChatML tokenizer_config.json beside a character tokenizer turns chat off with the reason (naming the
/// template's file) instead of stopping the server, which still serves completions; a template that
/// rejects a conversation is a 400 naming the template; the turn-closing token stops a chat response.
module SimKO.Tests.ChatMarkupTests

open System
open System.IO
open System.Text.Json.Nodes
open Expecto
open TorchSharp
open Microsoft.Extensions.Logging.Abstractions
open SimKO.Data.Tokenizers
open SimKO.Host.Model
open SimKO.Host.Serving
open SimKO.Host.Checkpoints
open SimKO.Tests.ServeFixture

let private sandboxOrSkip () =
    match SimKO.Data.Sandbox.CodeSandbox.Unavailable() with
    | null -> ()
    | why -> skiptestf "no sandbox isolation here: %s" why

let tests =
    testSequenced <| testList "chat markup" [
        testCase "a ChatML template beside a character tokenizer: chat is off, naming the template; the server starts and completes" <| fun () ->
            sandboxOrSkip ()
            let dir = Path.Combine(root, "char-chatml")
            Directory.CreateDirectory dir |> ignore
            let tok = CharTokenizer(SimKO.Data.Tasks.Countdown().Alphabet)
            tok.Save dir
            let cfg = JsonObject()
            cfg.["chat_template"] <- JsonValue.Create qwenTemplate
            let configPath = Path.Combine(dir, "tokenizer_config.json")
            File.WriteAllText(configPath, cfg.ToJsonString())
            let loaded = HfFolder.LoadTokenizer dir
            let chat = ChatMarkup.FromFolder(dir, loaded)
            Expect.isNotNull chat.Unsupported "chat is off"
            Expect.stringContains chat.Unsupported configPath "the reason names the template's file"
            Expect.stringContains chat.Unsupported "cannot encode" "and says why"
            use model = new CausalLM(ModelConfig.Tiny(loaded.VocabSize, dModel = 16, layers = 1, heads = 2, kvHeads = 1, maxPositions = 64))
            model.InitWeights 3L
            model.eval() |> ignore
            let server = SimkoServer.StartAsync(model, loaded, chat, "char", options, NullLogger.Instance).GetAwaiter().GetResult()
            try
                let status, body, _ = post (server.Url + "/v1/chat/completions") (json [ "model", jv "char"; "messages", JsonArray(JsonObject(dict [ "role", jv "user"; "content", jv "1+2" ])) ]) None
                Expect.equal status 400 (string body)
                Expect.stringContains (body.["error"].["message"].GetValue<string>()) configPath "the 400 gives the reason"
                let status2, body2, _ = post (server.Url + "/v1/completions") (json [ "model", jv "char"; "prompt", jv "1+2"; "max_tokens", jv 3 ]) None
                Expect.equal status2 200 (string body2)
            finally server.DisposeAsync().AsTask().GetAwaiter().GetResult()
        testCase "the tiny ChatML model: chat is on, <|im_end|> ends a turn, and a conversation the template rejects is a 400 naming the template" <| fun () ->
            sandboxOrSkip ()
            let dir = tinyModel.Force()
            let tok = HfFolder.LoadTokenizer dir
            let chat = ChatMarkup.FromFolder(dir, tok)
            Expect.isNull chat.Unsupported "chat is on"
            Expect.contains chat.StopTokenIds (tok.Encode("<|im_end|>").[0]) "<|im_end|> stops"
            Expect.equal (chat.Render [ "user", "Hi" ]) "<|im_start|>system\nYou are a tiny test model.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n" "rendered by the template"
            let strict = Path.Combine(root, "tiny-strict")
            Directory.CreateDirectory strict |> ignore
            for f in Directory.GetFiles dir do File.Copy(f, Path.Combine(strict, Path.GetFileName f), true)
            let cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "tokenizer_config.json"))).AsObject()
            cfg.["chat_template"] <- JsonValue.Create("{%- if messages[-1].role != 'user' %}{{ raise_exception('the last message must be the user\\'s') }}{%- endif %}" + qwenTemplate)
            File.WriteAllText(Path.Combine(strict, "tokenizer_config.json"), cfg.ToJsonString())
            use model = loadModel strict
            let server = SimkoServer.StartAsync(model, tok, ChatMarkup.FromFolder(strict, tok), "tiny", options, NullLogger.Instance).GetAwaiter().GetResult()
            try
                let messages (roles: string list) = JsonArray(roles |> List.map (fun r -> JsonObject(dict [ "role", jv r; "content", jv "x" ]) :> JsonNode) |> Array.ofList) :> JsonNode
                let status, body, _ = post (server.Url + "/v1/chat/completions") (json [ "model", jv "tiny"; "messages", messages [ "user"; "assistant" ]; "max_tokens", jv 2 ]) None
                Expect.equal status 400 (string body)
                let text = body.["error"].["message"].GetValue<string>()
                Expect.stringContains text (Path.Combine(strict, "tokenizer_config.json")) "names the template's file"
                Expect.stringContains text "the last message must be the user's" "Jinja's message"
                let ok, body2, _ = post (server.Url + "/v1/chat/completions") (json [ "model", jv "tiny"; "messages", messages [ "user" ]; "max_tokens", jv 2 ]) None
                Expect.equal ok 200 (string body2)
            finally server.DisposeAsync().AsTask().GetAwaiter().GetResult()
    ]
