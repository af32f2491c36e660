/// Chat templates by Jinja2 in the sandbox (issue 23 §3): templates in the formats of Qwen2.5, Llama 3.1
/// and Mistral (fixtures/chat-templates, written for these tests) render as transformers'
/// apply_chat_template does; the expected prompts are written by hand from each format. A template's own error (raise_exception, a
/// syntax error) names the template's file and gives Jinja's message; prompts are cached per distinct
/// message list.
module SimKO.Data.Tests.ChatTemplateTests

open System
open System.IO
open System.Text.Json.Nodes
open Expecto
open SimKO.Data.Chat
open SimKO.Data.Math
open SimKO.Data.Tests.SandboxFixture

let private fixture name = File.ReadAllText(Path.Combine(repoRoot (), "tests", "SimKO.Data.Tests", "fixtures", "chat-templates", name))

let private inFolder (f: string -> unit) =
    let dir = Path.Combine(Path.GetTempPath(), "simko-chat-" + Guid.NewGuid().ToString("N"))
    Directory.CreateDirectory dir |> ignore
    try f dir finally Directory.Delete(dir, true)

let private msg role content = ChatMessage(role, content)

/// tokenizer_config.json with the given fields (values: JSON nodes).
let private writeConfig (dir: string) (fields: (string * JsonNode) list) =
    let o = JsonObject()
    for k, v in fields do o.[k] <- v
    File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), o.ToJsonString())

let private message (f: unit -> unit) =
    try f (); failtest "expected a ChatTemplateException" with :? ChatTemplateException as e -> e.Message

let tests =
    testList "chat templates" [
        testCase "Qwen2.5-style (tokenizer_config.json's chat_template): default system message, multi-turn, generation prompt" <| fun () ->
            let pool = pool ()
            inFolder (fun dir ->
                writeConfig dir [ "chat_template", JsonValue.Create(fixture "qwen2.5-style.jinja"); "eos_token", JsonValue.Create "<|im_end|>"; "bos_token", null ]
                let t = ChatTemplate.FromFolder dir
                Expect.equal t.Source (Path.Combine(dir, "tokenizer_config.json")) "the template's file"
                let got = t.RenderMany(pool, [| [| msg "user" "Hi"; msg "assistant" "Hello!"; msg "user" "What is 2+2?" |]; [| msg "system" "You are terse."; msg "user" "What is 2+2?" |] |])
                Expect.equal got.[0]
                    ("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
                     + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"
                     + "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n") "no system message: Qwen's default one"
                Expect.equal got.[1] "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n" "a system message replaces the default"
                let noPrompt = t.Render(pool, [| msg "user" "Hi" |], addGenerationPrompt = false)
                Expect.isFalse (noPrompt.EndsWith "<|im_start|>assistant\n") "add_generation_prompt=false: no assistant header")
        testCase "Llama 3.1-style (chat_template.jinja, bos_token as an AddedToken): bos, the dated system header, trimmed contents" <| fun () ->
            let pool = pool ()
            inFolder (fun dir ->
                let bos = JsonObject()
                bos.["content"] <- JsonValue.Create "<|begin_of_text|>"
                bos.["special"] <- JsonValue.Create true
                writeConfig dir [ "bos_token", bos; "eos_token", JsonValue.Create "<|eot_id|>"; "chat_template", JsonValue.Create "{{ 'not this one' }}" ]
                File.WriteAllText(Path.Combine(dir, "chat_template.jinja"), fixture "llama3.1-style.jinja")
                let t = ChatTemplate.FromFolder dir
                Expect.equal t.Source (Path.Combine(dir, "chat_template.jinja")) "chat_template.jinja is preferred, as transformers does"
                let got = t.Render(pool, [| msg "system" "You are terse.\n"; msg "user" " What is 2+2? \n" |])
                Expect.equal got
                    ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
                     + "You are terse.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
                     + "<|start_header_id|>assistant<|end_header_id|>\n\n") "Llama 3.1's prompt"
                let noSystem = t.Render(pool, [| msg "user" "Hi" |])
                Expect.stringContains noSystem "Today Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>" "an empty system message after the header")
        testCase "Mistral-style (a list of named templates): the system message joins the last user turn; eos after the assistant's" <| fun () ->
            let pool = pool ()
            inFolder (fun dir ->
                let named (name: string) (text: string) =
                    let o = JsonObject()
                    o.["name"] <- JsonValue.Create name
                    o.["template"] <- JsonValue.Create text
                    o :> JsonNode
                writeConfig dir [ "bos_token", JsonValue.Create "<s>"; "eos_token", JsonValue.Create "</s>"
                                  "chat_template", JsonArray(named "tool_use" "{{ 'tools' }}", named "default" (fixture "mistral-style.jinja")) ]
                let t = ChatTemplate.FromFolder dir
                let got = t.Render(pool, [| msg "system" "You are terse."; msg "user" "Hi"; msg "assistant" "Hello!"; msg "user" "What is 2+2?" |])
                Expect.equal got "<s>[INST]Hi[/INST]Hello!</s>[INST]You are terse.\n\nWhat is 2+2?[/INST]" "Mistral's prompt"
                let e = message (fun () -> t.Render(pool, [| msg "user" "Hi"; msg "user" "again" |]) |> ignore)
                Expect.stringContains e (Path.Combine(dir, "tokenizer_config.json")) "names the template's file"
                Expect.stringContains e "After the optional system message, conversation roles must alternate user/assistant/user/assistant/..." "Jinja's message (the template's raise_exception)"
                Expect.stringContains e "[user, user]" "names the conversation")
        testCase "a template that does not compile or names what is not there is an error with the file, the line and Jinja's message" <| fun () ->
            let pool = pool ()
            let bad = ChatTemplate("{% for m in messages %}\n{{ m.content }\n{% endfor %}", "/models/x/tokenizer_config.json")
            let e = message (fun () -> bad.Render(pool, [| msg "user" "Hi" |]) |> ignore)
            Expect.stringContains e "/models/x/tokenizer_config.json" "the file"
            Expect.stringContains e "line 2" "the template's line"
            Expect.stringContains e "TemplateSyntaxError" "Jinja's error"
            let undefinedCall = ChatTemplate("line one\n{{ messages[0].content.nope() }}", "t.jinja")
            let e2 = message (fun () -> undefinedCall.Render(pool, [| msg "user" "Hi" |]) |> ignore)
            Expect.stringContains e2 "t.jinja" "the file"
            Expect.stringContains e2 "line 2" "the line of the failing expression"
            let unsafe = ChatTemplate("{{ messages.__class__.__mro__ }}{{ ''.__class__.__subclasses__() }}", "evil.jinja")
            let e3 = message (fun () -> unsafe.Render(pool, [| msg "user" "Hi" |]) |> ignore)
            Expect.stringContains e3 "SecurityError" "the sandboxed environment refuses unsafe attributes"
            Expect.stringContains (message (fun () -> ChatTemplate.FromFolder(Path.GetTempPath()) |> ignore)) "tokenizer_config.json does not exist" "no template: says where it looked"
        testCase "strftime_now, loopcontrols and the generation block work as in transformers" <| fun () ->
            let pool = pool ()
            let t = ChatTemplate("{% for m in messages %}{% if loop.index > 2 %}{% break %}{% endif %}{% generation %}[{{ m.content }}]{% endgeneration %}{% endfor %}|{{ strftime_now('%Y') }}|{{ messages | tojson }}", "t.jinja")
            let got = t.Render(pool, [| msg "user" "a"; msg "assistant" "é"; msg "user" "c" |])
            Expect.equal got (sprintf "[a][é]|%d|[{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"assistant\", \"content\": \"é\"}, {\"role\": \"user\", \"content\": \"c\"}]" DateTime.Now.Year) "break after two, the year, tojson keeps é"
        testCase "prompts are cached per distinct message list (and a cached prompt is the rendered one)" <| fun () ->
            let pool = pool ()
            let t = ChatTemplate("{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}", "t.jinja")
            let a = [| msg "user" "1+1?" |]
            let b = [| msg "user" "2+2?" |]
            let first = t.RenderMany(pool, [| a; b; a; a |])
            Expect.equal first [| "<user>1+1?<assistant>"; "<user>2+2?<assistant>"; "<user>1+1?<assistant>"; "<user>1+1?<assistant>" |] "rendered in order"
            Expect.equal t.Cached 2 "two distinct lists rendered"
            let again = t.RenderMany(pool, [| b; a |])
            Expect.equal again [| first.[1]; first.[0] |] "from the cache"
            Expect.equal t.Cached 2 "nothing new rendered"
            Expect.equal (t.Render(pool, a, addGenerationPrompt = false)) "<user>1+1?" "the generation prompt flag is part of the key"
            Expect.equal t.Cached 3 "a third entry"
    ]
