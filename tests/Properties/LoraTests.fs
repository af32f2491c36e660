/// LoRA (issue 22): adapters leave the base model's outputs unchanged at B = 0, equal the merged
/// model after random A, B, have the gradients finite differences give, train only themselves,
/// round-trip through PEFT's files, and serve as the KL reference when switched off.
module SimKO.Tests.LoraTests

open System
open System.IO
open Expecto
open TorchSharp
open Microsoft.Extensions.Logging.Abstractions
open SimKO.Host.Model
open SimKO.Host.Checkpoints

let private all7 = LoraSettings.AllProjections

let private config (bias: bool) =
    ModelConfig("qwen2", 20, 32, 48, 2, 4, 2, 1e-6, 10000.0, false, bias, 64)

let private model (seed: int64) (dtype: torch.ScalarType) =
    let m = new CausalLM(config true, dtype = dtype)
    m.InitWeights seed
    m

let private ids () = torch.tensor([| 3L; 5L; 7L; 2L; 9L; 4L; 11L; 6L; 1L; 8L; 2L; 2L |]).reshape(2L, 6L)

let private logProbs (m: CausalLM) (x: torch.Tensor) =
    let mask = torch.ones_like x
    m.Forward(x, mask, CausalLM.PositionsFromMask mask).to_type(torch.ScalarType.Float32).log_softmax(-1L)

let private maxDiff (a: torch.Tensor) (b: torch.Tensor) = (a - b).abs().max().to_type(torch.ScalarType.Float64).item<float>()

/// Give every adapter random A and B (B = 0 would hide most mistakes).
let private randomise (m: CausalLM) (seed: int64) =
    use _ = torch.no_grad()
    let g = new torch.Generator(uint64 seed)
    for struct (_, p) in m.LoraParameters() do
        p.copy_(torch.randn(p.shape, p.dtype, generator = g) * 0.2) |> ignore

let private temp name =
    let d = Path.Combine(Path.GetTempPath(), sprintf "simko-lora-%s-%d" name Environment.ProcessId)
    if Directory.Exists d then Directory.Delete(d, true)
    d

let private floats (t: torch.Tensor) = t.to_type(torch.ScalarType.Float32).contiguous().data<float32>().ToArray()

let tests =
    testSequenced <| testList "lora" [
        testCase "with B = 0 the LoRA model's log-probs equal the base model's, for every target set and rsLoRA" <| fun () ->
            use _ = torch.NewDisposeScope()
            use _ = torch.no_grad()
            for targets, rs in [ all7, false; [| "q_proj"; "v_proj" |] :> _, true; [| "down_proj" |] :> _, false ] do
                use m = model 7L torch.ScalarType.Float32
                let before = logProbs m (ids ())
                m.AttachLora(LoraSettings(4, 8.0, targets, UseRslora = rs), 3L)
                Expect.equal (m.LoraParameters().Count) (2 * 2 * Seq.length targets) "A and B per targeted projection per layer"
                Expect.equal (maxDiff (logProbs m (ids ())) before) 0.0 "step 0 is the base model exactly"
                for struct (n, p) in m.LoraParameters() do
                    if n.EndsWith "lora_B.weight" then Expect.isTrue (p.abs().max().item<float32>() = 0.0f) (n + " is zero")
                    else
                        // PEFT: kaiming_uniform(a = √5) = U(−1/√in, 1/√in), in = A's columns
                        let bound = 1.0 / sqrt (float p.shape[1])
                        let top = p.abs().max().item<float32>() |> float
                        Expect.isTrue (top <= bound && top > 0.5 * bound) (sprintf "%s within ±1/√in = %g, max |a| %g" n bound top)

        testCase "after random A, B the LoRA model equals the merged model W + (α/r)·B·A within 1e-5 (and α/√r with rsLoRA)" <| fun () ->
            use _ = torch.NewDisposeScope()
            use _ = torch.no_grad()
            for rs in [ false; true ] do
                use m = model 7L torch.ScalarType.Float32
                m.AttachLora(LoraSettings(4, 8.0, all7, UseRslora = rs), 3L)
                randomise m 11L
                let lora = logProbs m (ids ())
                use merged = new CausalLM(config true)
                HfFolder.LoadInto(merged, m.MergedWeights(), "merged")
                let d = maxDiff lora (logProbs merged (ids ()))
                Expect.isLessThan d 1e-5 (sprintf "max |Δ log p| %g (rsLoRA %b)" d rs)
                use base' = model 7L torch.ScalarType.Float32
                Expect.isGreaterThan (maxDiff lora (logProbs base' (ids ()))) 1e-3 "the adapters do change the model (negative control)"

        testCase "gradients of the loss with respect to A and B equal central finite differences (float64)" <| fun () ->
            use _ = torch.NewDisposeScope()
            // the layer alone, in float64: y = W x + b + s · B(A x)
            let layer = new LoraLinear(5L, 3L, true, dtype = torch.ScalarType.Float64)
            layer.AttachAdapter(2, 1.7, 0.0, new torch.Generator(5UL))
            use _ = torch.no_grad()
            layer.LoraB.copy_(torch.randn([| 3L; 2L |], torch.ScalarType.Float64, generator = new torch.Generator(6UL))) |> ignore
            let x = torch.randn([| 4L; 5L |], torch.ScalarType.Float64, generator = new torch.Generator(7UL))
            let target = torch.randn([| 4L; 3L |], torch.ScalarType.Float64, generator = new torch.Generator(8UL))
            let loss () = (layer.forward(x) * target).sin().sum()
            let grads =
                use _ = torch.enable_grad()
                let l = loss ()
                l.backward()
                [ layer.LoraA.grad.clone(); layer.LoraB.grad.clone() ]
            for p, g in List.zip [ layer.LoraA; layer.LoraB ] grads do
                let flat = p.view(-1L)
                let gf = g.view(-1L)
                for i in 0L .. flat.shape[0] - 1L do
                    let v = flat[i].item<float>()
                    let h = 1e-6
                    flat[i] <- torch.tensor(v + h, torch.ScalarType.Float64)
                    let up = loss().item<float>()
                    flat[i] <- torch.tensor(v - h, torch.ScalarType.Float64)
                    let down = loss().item<float>()
                    flat[i] <- torch.tensor(v, torch.ScalarType.Float64)
                    let fd = (up - down) / (2.0 * h)
                    Expect.floatClose { absolute = 1e-7; relative = 1e-6 } (gf[i].item<float>()) fd (sprintf "∂L/∂θ[%d]" i)

        testCase "through the whole model the adapters' gradient agrees with a finite difference along a random direction, with and without gradient checkpointing" <| fun () ->
            use _ = torch.NewDisposeScope()
            let m = model 7L torch.ScalarType.Float64
            m.AttachLora(LoraSettings(3, 6.0, all7), 3L)
            randomise m 12L
            let x = ids ()
            let loss () = (logProbs m x * torch.linspace(-1.0, 1.0, 20L)).sum().to_type(torch.ScalarType.Float64)
            let ps = m.LoraParameters() |> Seq.map (fun struct (_, p) -> p) |> Array.ofSeq
            let dirs = ps |> Array.mapi (fun i p -> torch.randn(p.shape, torch.ScalarType.Float64, generator = new torch.Generator(uint64 (100 + i))))
            let directional (checkpointing: bool) =
                m.GradientCheckpointing <- checkpointing
                for p in ps do p.grad <- null
                let l = loss ()
                l.backward()
                Array.map2 (fun (p: TorchSharp.Modules.Parameter) (d: torch.Tensor) -> (p.grad * d).sum().item<float>()) ps dirs |> Array.sum
            let plain = directional false
            let checkpointed = directional true
            for struct (n, p) in m.NamedParameters() do Expect.isTrue (isNull p.grad) (n + ": a frozen base weight gets no gradient")
            let h = 1e-4
            let shift (s: float) =
                use _ = torch.no_grad()
                for p, d in Array.zip ps dirs do p.add_(d * s) |> ignore
            use _ = torch.no_grad()
            shift h
            let up = loss().item<float>()
            shift (-2.0 * h)
            let down = loss().item<float>()
            shift h
            let fd = (up - down) / (2.0 * h)
            // the RMSNorms compute in float32, so the difference quotient carries ~1e-7·|L|/h of noise
            Expect.floatClose { absolute = 1e-3; relative = 1e-2 } plain fd "directional derivative vs finite difference"
            Expect.floatClose { absolute = 1e-9; relative = 1e-9 } checkpointed plain "checkpointing gives the same adapter gradient (layer 0's included)"
            Expect.isGreaterThan (abs plain) 1e-3 "a gradient that is not zero"

        testCase "the reference with adapters switched off equals the base model, and switching back restores the policy" <| fun () ->
            use _ = torch.NewDisposeScope()
            use _ = torch.no_grad()
            use m = model 7L torch.ScalarType.Float32
            use base' = model 7L torch.ScalarType.Float32
            m.AttachLora(LoraSettings(4, 8.0, all7), 3L)
            randomise m 11L
            let policy = ModelPolicy(m) :> IPolicy
            let reference = AdaptersOffPolicy(m) :> IPolicy
            let x = ids ()
            let mask = torch.ones_like x
            let p1 = policy.Logits(x, mask)
            Expect.equal (maxDiff (reference.Logits(x, mask)) (base'.Forward(x, mask, CausalLM.PositionsFromMask mask))) 0.0 "reference = base"
            Expect.equal (maxDiff (policy.Logits(x, mask)) p1) 0.0 "adapters back on"
            Expect.isGreaterThan (maxDiff p1 (reference.Logits(x, mask))) 1e-3 "policy and reference differ"
            Expect.equal (policy.NamedParameters |> Seq.map (fun struct (n, _) -> n) |> List.ofSeq)
                         (m.LoraParameters() |> Seq.map (fun struct (n, _) -> n) |> List.ofSeq) "the policy trains the adapters only"

        testCase "PEFT round trip: saved adapter loads with the same log-probs, and the merged export equals W + (α/r)·B·A from the file with plain arrays" <| fun () ->
            use _ = torch.NewDisposeScope()
            let dir = temp "peft"
            use m = model 7L torch.ScalarType.Float32
            let alpha, r = 12.0, 4
            m.AttachLora(LoraSettings(r, alpha, [| "q_proj"; "o_proj"; "up_proj"; "down_proj" |]), 3L)
            randomise m 13L
            PeftAdapter.Save(m, Path.Combine(dir, "adapter"), "some/base")
            let cfg = Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "adapter", PeftAdapter.Config)))
            Expect.equal (cfg.["peft_type"].GetValue<string>()) "LORA" "peft_type"
            Expect.equal (cfg.["task_type"].GetValue<string>()) "CAUSAL_LM" "task_type"
            Expect.equal (cfg.["r"].GetValue<int>()) r "r"
            Expect.equal (cfg.["bias"].GetValue<string>()) "none" "bias"
            Expect.equal (cfg.["base_model_name_or_path"].GetValue<string>()) "some/base" "base model"
            let file = SafeTensors.Read(Path.Combine(dir, "adapter", PeftAdapter.Weights))
            let a = file.["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"]
            let b = file.["base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"]
            Expect.sequenceEqual a.shape [| int64 r; 32L |] "lora_A [r, in]"
            Expect.sequenceEqual b.shape [| 32L; int64 r |] "lora_B [out, r]"
            Expect.isFalse (file.ContainsKey "base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight") "untargeted: no adapter"
            use loaded = model 7L torch.ScalarType.Float32
            let settings = PeftAdapter.Apply(loaded, Path.Combine(dir, "adapter"))
            Expect.equal settings.Rank r "rank from the config"
            use _ = torch.no_grad()
            Expect.equal (maxDiff (logProbs loaded (ids ())) (logProbs m (ids ()))) 0.0 "same log-probs"
            // merged: read W from the merged file and A, B from the adapter file; plain loops
            let tok = SimKO.Data.Tokenizers.CharTokenizer("abcdefghijklmnop")
            HfFolder.Save(m, tok, Path.Combine(dir, "merged"), weights = m.MergedWeights())
            let merged = HfFolder.ReadWeights(Path.Combine(dir, "merged"))
            use base' = model 7L torch.ScalarType.Float32
            let baseW = base'.NamedParameters() |> Seq.map (fun struct (n, p) -> n, floats p) |> Map.ofSeq
            for proj, outF, inF in [ "model.layers.1.self_attn.o_proj", 32, 32; "model.layers.0.mlp.down_proj", 32, 48; "model.layers.1.mlp.up_proj", 48, 32 ] do
                let av = floats file.["base_model.model." + proj + ".lora_A.weight"]        // [r, in]
                let bv = floats file.["base_model.model." + proj + ".lora_B.weight"]        // [out, r]
                let w = baseW.[proj + ".weight"]
                let got = floats merged.[proj + ".weight"]
                for o in 0 .. outF - 1 do
                    for i in 0 .. inF - 1 do
                        let mutable ba = 0.0
                        for k in 0 .. r - 1 do ba <- ba + float bv[o * r + k] * float av[k * inF + i]
                        let want = float w[o * inF + i] + alpha / float r * ba
                        if abs (want - float got[o * inF + i]) > 1e-5 then
                            failtestf "%s[%d, %d]: merged %g, W + (α/r)·B·A = %g" proj o i got[o * inF + i] want
            Expect.isTrue (merged.["model.layers.0.self_attn.k_proj.weight"].Equals(base'.NamedParameters() |> Seq.pick (fun struct (n, p) -> if n = "model.layers.0.self_attn.k_proj.weight" then Some (p :> torch.Tensor) else None)))
                "an untargeted projection is the base weight"
            Directory.Delete(dir, true)

        testCase "a malformed adapter is an error naming the file and the tensor: wrong shape, unknown module, rank that disagrees with the config" <| fun () ->
            use _ = torch.NewDisposeScope()
            let dir = temp "bad"
            use m = model 7L torch.ScalarType.Float32
            m.AttachLora(LoraSettings(4, 8.0, [| "q_proj" |]), 3L)
            let folder = Path.Combine(dir, "a")
            PeftAdapter.Save(m, folder, "b")
            let file = Path.Combine(folder, PeftAdapter.Weights)
            let good = SafeTensors.Read file
            let rewrite (f: Collections.Generic.Dictionary<string, torch.Tensor> -> unit) =
                let d = Collections.Generic.Dictionary<string, torch.Tensor>(good)
                f d
                SafeTensors.Save(file, d)
            let expectError what (needles: string list) =
                use target = model 7L torch.ScalarType.Float32
                let e = Expect.throwsC (fun () -> PeftAdapter.Apply(target, folder) |> ignore) id
                for n in needles do Expect.stringContains e.Message n (sprintf "%s: the message names %s" what n)
            let qa = "base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight"
            rewrite (fun d -> d.[qa] <- torch.zeros(4L, 31L))
            expectError "wrong shape" [ file; qa; "[4, 31]"; "[4, 32]" ]
            rewrite (fun d -> d.[qa] <- torch.zeros(6L, 32L))
            expectError "rank" [ file; qa; "rank 6"; "r = 4" ]
            rewrite (fun d -> d.["base_model.model.model.layers.0.self_attn.x_proj.lora_A.weight"] <- torch.zeros(4L, 32L))
            expectError "unknown module" [ file; "x_proj" ]
            rewrite (fun d -> d.Remove qa |> ignore)
            expectError "missing" [ file; qa ]
            rewrite ignore
            File.WriteAllText(Path.Combine(folder, PeftAdapter.Config), File.ReadAllText(Path.Combine(folder, PeftAdapter.Config)).Replace("\"q_proj\"", "\"w_proj\""))
            expectError "config" [ PeftAdapter.Config; "w_proj" ]
            Directory.Delete(dir, true)

        testCase "LoRA settings parse and validate: defaults off, all seven projections, bad values named" <| fun () ->
            let d = SimKO.Cli.TrainConfig.defaults.Lora
            Expect.equal d.Rank 0 "off by default"
            Expect.sequenceEqual d.TargetModules (List.ofSeq all7) "all seven projections"
            match SimKO.Cli.TrainConfig.resolvePairs [ "lora_rank", "8"; "lora_alpha", "16"; "lora_target_modules", "q_proj,v_proj"; "use_rslora", "true"; "export", "adapter" ] with
            | Ok s ->
                Expect.equal s.Lora.Rank 8 "rank"
                Expect.sequenceEqual s.Lora.TargetModules [ "q_proj"; "v_proj" ] "targets"
                Expect.isTrue s.Lora.UseRslora "rslora"
                Expect.equal s.Lora.Export SimKO.Cli.RunSpec.AdapterOnly "export"
            | Error e -> failtestf "%A" e
            match SimKO.Cli.TrainConfig.resolvePairs [ "lora_rank", "-1"; "lora_target_modules", "q_proj,x_proj"; "lora_alpha", "0" ] with
            | Ok _ -> failtest "accepted bad LoRA settings"
            | Error es ->
                let all = String.concat "\n" es
                for n in [ "lora_rank"; "x_proj"; "lora_alpha" ] do Expect.stringContains all n "named"

        testCase "a LoRA training step changes only adapter tensors (base bit-identical), checkpoints hold only adapters, and resume is exact" <| fun () ->
            use _ = torch.NewDisposeScope()
            let out = temp "run"
            let spec =
                { SimKO.Cli.TrainConfig.defaults with
                    Steps = 4; PromptsPerStep = 2; SamplesPerPrompt = 4; MaxNewTokens = 8; MicroBatchSize = 4
                    Method = { SimKO.Math.Methods.define SimKO.Math.Methods.grpo with Common = { SimKO.Math.Methods.commonDefaults with Kl = { SimKO.Math.KlPenalty.off with Beta = 0.05 } } }
                    Optimizer = { SimKO.Cli.TrainConfig.defaults.Optimizer with LearningRate = 1e-2 }
                    Memory = { SimKO.Cli.TrainConfig.defaults.Memory with GradientCheckpointing = true; LogitsChunkTokens = 8; MaxTokensPerMicroBatch = 64 }
                    Lora = { SimKO.Cli.TrainConfig.defaults.Lora with Rank = 4 }
                    Out = out; CheckpointEvery = 2; KeepCheckpoints = 3; Tensorboard = false }
            // a reward the tiny random model earns half the time (Countdown's would be 0, so no gradient)
            let trainer (run: SimKO.Host.Runs.Run) (spec: SimKO.Cli.RunSpec.TrainSpec) =
                let p = run.Parts
                let problems = p.Problems |> Seq.map (fun q -> SimKO.Host.Training.TrainProblem(q.Id, q.PromptIds, fun r -> if r.Length > 0 && r[0] % 2 = 0 then 1.0 else 0.0)) |> Array.ofSeq
                let parts = SimKO.Host.Training.TrainerParts(Policy = p.Policy, Rollout = p.Rollout, StopTokenIds = p.StopTokenIds, Problems = problems, PadId = p.PadId,
                                                             WriteTensors = p.WriteTensors, ReadTensors = p.ReadTensors, ExportHf = p.ExportHf,
                                                             ExportHfWeights = p.ExportHfWeights, Reference = p.Reference)
                SimKO.Host.Training.Trainer(SimKO.Cli.TrainConfig.trainSettings spec, parts, NullLogger.Instance)
            let adaptersOf (run: SimKO.Host.Runs.Run) = run.Model.LoraParameters() |> Seq.map (fun struct (n, p) -> n, p.detach().clone()) |> List.ofSeq
            use run = SimKO.Host.Runs.RunFactory.Build(spec, NullLogger.Instance)
            Expect.isNull (box run.Reference) "no second copy of the weights for the KL reference"
            use init = SimKO.Host.Runs.TinyModel.Create(run.Task, int64 spec.Seed)
            let before = adaptersOf run
            (trainer run spec).Run(false) |> ignore
            for struct (n, p0) in init.NamedParameters() do
                let p = run.Model.NamedParameters() |> Seq.pick (fun struct (m, p) -> if m = n then Some p else None)
                Expect.isTrue (p.Equals p0) (n + " is bit-identical after training")
            let after = adaptersOf run
            let moved = List.zip before after |> List.filter (fun ((_, a), (_, b)) -> not (a.Equals b)) |> List.length
            Expect.equal moved after.Length "every adapter tensor moved (B from zero, A with it)"
            let ckpt = Path.Combine(out, "checkpoints", "step-00000004")
            let saved = SafeTensors.Read(Path.Combine(ckpt, SimKO.Host.Training.Trainer.ModelFile))
            Expect.sequenceEqual (saved.Keys |> Seq.sort) (after |> List.map fst |> List.sort) "the checkpoint holds the adapters only"
            let opt = SafeTensors.Read(Path.Combine(ckpt, SimKO.Host.Training.Trainer.OptimizerFile))
            Expect.equal opt.Count (1 + 2 * after.Length) "and their moments only"
            Expect.isTrue (File.Exists(Path.Combine(out, "final", "adapter", PeftAdapter.Weights))) "final/adapter"
            Expect.isTrue (File.Exists(Path.Combine(out, "final", HfFolder.Weights))) "final/ merged"
            // resume: delete the last checkpoint, resume from step 2, land on the same adapters
            Directory.Delete(ckpt, true)
            use run2 = SimKO.Host.Runs.RunFactory.Build(spec, NullLogger.Instance)
            (trainer run2 spec).Run(true) |> ignore
            for (n, a), (_, b) in List.zip after (adaptersOf run2) do Expect.isTrue (a.Equals b) (n + ": resumed run equals the uninterrupted one")
            // the exported adapter continues training: train --set adapter=final/adapter
            let spec3 = { spec with Steps = 1; Out = out + "-cont"; Lora = { spec.Lora with Rank = 0; Adapter = Some(Path.Combine(out, "final", "adapter")) } }
            use run3 = SimKO.Host.Runs.RunFactory.Build(spec3, NullLogger.Instance)
            for (n, a), (_, b) in List.zip after (adaptersOf run3) do Expect.isTrue (a.Equals b) (n + ": continued from the exported adapter")
            let spec4 = { spec3 with Lora = { spec3.Lora with Rank = 8 } }
            let e = Expect.throwsC (fun () -> SimKO.Host.Runs.RunFactory.Build(spec4, NullLogger.Instance) |> ignore) id
            Expect.stringContains e.Message "lora_rank = 8" "a rank that disagrees with the adapter's config"
            Directory.Delete(out, true)
            if Directory.Exists(out + "-cont") then Directory.Delete(out + "-cont", true)
    
        testCase "plan counts LoRA adapters exactly (a built model's count; Qwen2.5-7B r 64 by hand) and freezes the base: no master, gradient or moments for it" <| fun () ->
            use _ = torch.NewDisposeScope()
            for targets in [ all7; [| "q_proj"; "v_proj" |] :> _; [| "gate_proj"; "down_proj"; "o_proj" |] :> _ ] do
                for bias in [ true; false ] do
                    use m = new CausalLM(config bias)
                    m.AttachLora(LoraSettings(3, 6.0, targets), 1L)
                    let built = m.LoraParameters() |> Seq.sumBy (fun struct (_, p) -> p.numel())
                    Expect.equal (SimKO.Host.Planning.MemoryPlan.LoraParameters(config bias, 3, targets)) built "the plan's count equals the built adapters'"
            // per layer: q, o 64·(3584 + 3584); k, v 64·(3584 + 512); gate, up, down 64·(3584 + 18944) → 5,767,168 × 28
            let qwen7b = MemoryPlanTests.qwen7b
            let a = SimKO.Host.Planning.MemoryPlan.LoraParameters(qwen7b, 64)
            Expect.equal a 161_480_704L "Qwen2.5-7B, r 64, all seven projections"
            let p = SimKO.Host.Planning.MemoryPlan.Parameters qwen7b
            let bf16 = SimKO.Host.Planning.PlanSettings(2, false, true, 1024L, 12000L, 10286L, 0L, 3584L, false, 64, null)
            let plan = SimKO.Host.Planning.MemoryPlan.Compute(qwen7b, bf16, 80L * 1073741824L)
            let k = plan.Components
            Expect.equal k.Weights ((p + a) * 2L) "frozen bf16 base + bf16 adapters"
            Expect.equal k.MasterWeights (a * 4L) "fp32 masters of the adapters only"
            Expect.equal k.Gradients (a * 2L + a * 4L) "bf16 adapter gradients + fp32 sums; none for the base"
            Expect.equal k.OptimizerState (a * 8L) "moments of the adapters only"
            Expect.equal plan.AdapterParameters a "adapter parameters reported"
            Expect.equal ((SimKO.Host.Commands.PlanCommand.Json plan).["adapter_parameters"].GetValue<int64>()) a "adapter_parameters in --json"
            let full = SimKO.Host.Planning.MemoryPlan.Compute(qwen7b, SimKO.Host.Planning.PlanSettings(2, false, true, 1024L, 12000L, 10286L, 0L, 3584L, false), 80L * 1073741824L)
            Expect.isLessThan plan.TotalBytes (full.TotalBytes / 3L) "LoRA needs a fraction of full fine-tuning's memory"
            Expect.equal (full.Components.Logits - k.Logits) (152064L * 3584L * 4L) "a frozen head needs no fp32 ∂W accumulator"
    
        testCase "the fused chunked head with a frozen weight gives the same hidden-state gradient and no weight gradient" <| fun () ->
            use _ = torch.NewDisposeScope()
            let g = new torch.Generator(3UL)
            let h0 = torch.randn([| 2L; 5L; 8L |], generator = g)
            let w0 = torch.randn([| 11L; 8L |], generator = g)
            let tokens = torch.randint(11L, [| 2L; 5L |], generator = g)
            let run (frozen: bool) =
                let h = h0.clone().requires_grad_(true)
                let w = w0.clone().requires_grad_(not frozen)
                let st = SimKO.Math.LmHead.tokenStats 3 2 h w tokens
                (st.LogProbs.sum() + st.TopKLogProbs.sum()).backward()
                h.grad, w.grad
            let hTrain, wTrain = run false
            let hFrozen, wFrozen = run true
            Expect.isLessThan (maxDiff hTrain hFrozen) 1e-6 "same ∂hidden"
            Expect.isNotNull (box wTrain) "a trained head gets ∂W"
            Expect.isNull (box wFrozen) "a frozen head gets none"
    
        testCase "simko score --adapter on the base folder gives the merged export's log-probs" <| fun () ->
            use _ = torch.NewDisposeScope()
            let dir = temp "score"
            let tok = SimKO.Data.Tokenizers.CharTokenizer("abcdefghijklmnop")
            use m = model 7L torch.ScalarType.Float32
            HfFolder.Save(m, tok, Path.Combine(dir, "base"))
            m.AttachLora(LoraSettings(4, 8.0, all7), 3L)
            randomise m 21L
            PeftAdapter.Save(m, Path.Combine(dir, "adapter"), Path.Combine(dir, "base"))
            HfFolder.Save(m, tok, Path.Combine(dir, "merged"), weights = m.MergedWeights())
            let input = Path.Combine(dir, "in.jsonl")
            File.WriteAllText(input, "{\"ids\": [3, 5, 7, 2, 9, 4]}\n{\"ids\": [11, 6, 1]}\n")
            let score model adapter out =
                let o : SimKO.Cli.ScoreArgs.ScoreOptions = { Model = model; Input = input; Output = Some out; Device = SimKO.Cli.RunSpec.Cpu; Adapter = adapter }
                Expect.equal (SimKO.Host.Commands.ScoreCommand.Run o) 0 "score runs"
                File.ReadAllLines out |> Array.map (fun l -> Text.Json.Nodes.JsonNode.Parse(l).["logprobs"].AsArray() |> Seq.map (fun x -> x.GetValue<float>()) |> Array.ofSeq)
            let withAdapter = score (Path.Combine(dir, "base")) (Some(Path.Combine(dir, "adapter"))) (Path.Combine(dir, "a.jsonl"))
            let merged = score (Path.Combine(dir, "merged")) None (Path.Combine(dir, "m.jsonl"))
            let plain = score (Path.Combine(dir, "base")) None (Path.Combine(dir, "b.jsonl"))
            for a, b in Array.zip (Array.concat withAdapter) (Array.concat merged) do Expect.floatClose { absolute = 1e-5; relative = 1e-5 } a b "adapter = merged"
            Expect.isGreaterThan (Array.map2 (fun a b -> abs (a - b)) (Array.concat withAdapter) (Array.concat plain) |> Array.max) 1e-3 "and differs from the base"
            Directory.Delete(dir, true)

        testCase "a LoRA projection's forward leaves only its output in the dispose scope (no (…, out) temporaries alive until the layer ends), and equals W x + s·B(A x)" <| fun () ->
            use layer = new LoraLinear(32L, 48L, false)
            layer.AttachAdapter(4, 2.0, 0.0, new torch.Generator(3UL))
            layer.weight.requires_grad <- false
            (use _ = torch.no_grad()
             layer.LoraB.copy_(torch.randn(48L, 4L, generator = new torch.Generator(5UL))) |> ignore)
            use x = torch.randn(2L, 5L, 32L, generator = new torch.Generator(7UL))
            for grad in [ false; true ] do
                use _ = torch.enable_grad grad
                use scope = torch.NewDisposeScope()
                let before = scope.DisposablesCount
                let y = layer.forward x
                Expect.equal (scope.DisposablesCount - before) 1 (sprintf "grad %b: the output alone stays in the scope" grad)
                if grad then
                    y.sum().backward()
                    Expect.isNotNull (box layer.LoraA.grad) "A gets a gradient through the in-place add"
                    Expect.isNotNull (box layer.LoraB.grad) "B too"
                    Expect.isNull (box layer.weight.grad) "the frozen W gets none"
                use _ = torch.no_grad()
                let reference = x.matmul(layer.weight.t()) + x.matmul(layer.LoraA.t()).matmul(layer.LoraB.t()) * 2.0
                Expect.isLessThan (maxDiff y reference) 1e-5 "y = W x + s·B(A x)"

        testCase "simko serve loads a PEFT adapter by name: requests naming it get its log-probs, the base name the base's, the weights version rises; a malformed adapter is a 400 naming file and tensor and changes nothing; unload makes the name a 404" <| fun () ->
            use _ = torch.NewDisposeScope()
            let dir = temp "serve"
            let probe = [| 65; 66; 67; 68; 69; 70 |]
            let scores (m: CausalLM) = SequenceScores.LogProbs(ModelPolicy(m), probe)
            use plain = ServeFixture.loadModel (ServeFixture.tinyModel.Force())
            let baseScores = scores plain
            use tuned = ServeFixture.loadModel (ServeFixture.tinyModel.Force())
            tuned.AttachLora(LoraSettings(4, 8.0, all7), 3L)
            randomise tuned 21L
            let adapterScores = scores tuned
            let good = Path.Combine(dir, "good")
            PeftAdapter.Save(tuned, good, "tiny")
            let close (what: string) (a: float32[]) (b: float32[]) =
                Expect.equal a.Length b.Length what
                for x, y in Array.zip a b do Expect.isLessThan (abs (x - y)) 1e-4f what
            Expect.isGreaterThan (Array.map2 (fun (a: float32) b -> abs (a - b)) adapterScores baseScores |> Array.max) 1e-2f "the adapter changes the model (else this test could not tell them apart)"
            ServeFixture.withServer ServeFixture.options <| fun server _ ->
                use c = new SimKO.Host.Rollout.ServerRolloutClient(SimKO.Host.Rollout.RolloutClientOptions(server.Url, SimKO.Host.Rollout.RolloutServer.Simko))
                let v0 = server.Engine.WeightsVersion
                let reported = c.LoadAdapter("a1", good)
                Expect.equal reported (Nullable(v0 + 1L)) "loading attaches the adapter: one swap, its version reported"
                c.UseAdapter "a1"
                close "requests naming the adapter get its log-probs" (c.ServerLogProbs probe) adapterScores
                c.UseAdapter null
                close "requests naming the base get the base's" (c.ServerLogProbs probe) baseScores
                Expect.equal server.Engine.WeightsVersion (v0 + 2L) "switching back to the base is a swap too"
                // concurrent requests of both variants each get their own (the engine runs one variant at a time)
                let echo (model: string) =
                    ServeFixture.post (server.Url + "/v1/completions")
                        (ServeFixture.json [ "model", ServeFixture.jv model; "prompt", ServeFixture.ints probe; "max_tokens", ServeFixture.jv 1
                                             "echo", ServeFixture.jv true; "logprobs", ServeFixture.jv 1; "return_tokens_as_token_ids", ServeFixture.jv true ]) None
                let answers = [| for i in 0 .. 7 -> if i % 2 = 0 then "tiny" else "a1" |] |> Array.Parallel.map (fun m -> m, echo m)
                for m, (status, body, _) in answers do
                    Expect.equal status 200 (sprintf "%s answered" m)
                    let lps = [| for x in body.["choices"].[0].["logprobs"].["token_logprobs"].AsArray() |> Seq.skip 1 |> Seq.take (probe.Length - 1) -> x.GetValue<float32>() |]
                    close (sprintf "a concurrent request naming '%s'" m) lps (if m = "a1" then adapterScores else baseScores)
                use http = new Net.Http.HttpClient()
                let list = Text.Json.Nodes.JsonNode.Parse(http.GetStringAsync(server.Url + "/v1/models").Result).["data"].AsArray()
                Expect.equal [ for m in list -> m.["id"].GetValue<string>() ] [ "tiny"; "a1" ] "the model list has the base first, then the adapter"
                Expect.equal (list.[1].["parent"].GetValue<string>()) "tiny" "the adapter's parent is the base"
                // malformed adapters: 400 naming the file and tensor; nothing changes
                let load name path = ServeFixture.post (server.Url + "/v1/load_lora_adapter") (ServeFixture.json [ "lora_name", ServeFixture.jv name; "lora_path", ServeFixture.jv path ]) None
                let bad = Path.Combine(dir, "bad")
                PeftAdapter.Save(tuned, bad, "tiny")
                let file = Path.Combine(bad, PeftAdapter.Weights)
                let tensors = SafeTensors.Read file
                let qa = "base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight"
                let before = server.Engine.WeightsVersion
                let expect400 (what: string) (needles: string list) =
                    let status, body, _ = load "b" bad
                    Expect.equal status 400 what
                    let message = body.["error"].["message"].GetValue<string>()
                    for n in needles do Expect.stringContains message n (sprintf "%s: the message names %s" what n)
                    Expect.equal (body.["error"].["param"].GetValue<string>()) "lora_path" (what + ": the field")
                tensors.[qa] <- torch.zeros(4L, 31L)
                SafeTensors.Save(file, tensors)
                expect400 "a wrong shape" [ file; qa; "[4, 31]" ]
                tensors.[qa] <- torch.full(4L, 32L, Single.NaN)
                SafeTensors.Save(file, tensors)
                expect400 "a NaN" [ file; qa; "non-finite" ]
                let nowhere = Path.Combine(dir, "nowhere")
                let status, body, _ = load "b" nowhere
                Expect.equal status 400 "a missing folder"
                Expect.stringContains (body.["error"].["message"].GetValue<string>()) nowhere "names the folder"
                Expect.equal server.Engine.WeightsVersion before "a refused adapter swaps nothing"
                c.UseAdapter "a1"
                close "the loaded adapter still serves after the refusals" (c.ServerLogProbs probe) adapterScores
                let status, body, _ = load "a1" good
                Expect.equal status 400 "a loaded name is refused"
                Expect.stringContains (body.["error"].["message"].GetValue<string>()) "already loaded" "says why"
                Expect.equal (let s, _, _ = load "tiny" good in s) 400 "the base model's name is refused"
                let s, b, _ = ServeFixture.post (server.Url + "/v1/load_lora_adapter") (ServeFixture.json [ "lora_name", ServeFixture.jv "c" ]) None
                Expect.equal s 400 "no lora_path"
                Expect.equal (b.["error"].["param"].GetValue<string>()) "lora_path" "names the field"
                // unload: the name is gone
                c.UnloadAdapter "a1"
                Expect.isNull c.Adapter "the client selects the base again"
                let status, body, _ = echo "a1"
                Expect.equal status 404 "an unloaded adapter is not served"
                Expect.stringContains (body.["error"].["message"].GetValue<string>()) "'tiny'" "the error lists what is served"
                let unload = ServeFixture.post (server.Url + "/v1/unload_lora_adapter") (ServeFixture.json [ "lora_name", ServeFixture.jv "a1" ]) None
                Expect.equal (let s, _, _ = unload in s) 404 "unloading an unknown name is a 404"
                // the name again, for another adapter: it is attached anew (the engine still holds the old one)
                randomise tuned 33L
                let good2 = Path.Combine(dir, "good2")
                PeftAdapter.Save(tuned, good2, "tiny")
                let adapter2Scores = scores tuned
                let v = server.Engine.WeightsVersion
                Expect.equal (c.LoadAdapter("a1", good2)) (Nullable(v + 1L)) "a reloaded name is a new version"
                c.UseAdapter "a1"
                close "a name loaded again serves the new adapter" (c.ServerLogProbs probe) adapter2Scores
                c.UseAdapter null
                close "the base still serves" (c.ServerLogProbs probe) baseScores
            Directory.Delete(dir, true)

        testCase "a LoRA run through simko serve syncs adapters: it equals the in-process LoRA run, the weights version rises every step, the probe passes, and the served log-probs equal the trainer's policy's" <| fun () ->
            let root = temp "train-served"
            let task = SimKO.Host.Runs.TaskBinding.Create SimKO.Cli.RunSpec.Countdown
            // the runs continue from a random adapter (adapter=DIR): the tiny model earns no Countdown reward, so no gradient
            // moves B off zero, and a zero adapter could not tell a served adapter from the base
            let start = Path.Combine(root, "start-adapter")
            (use m = SimKO.Host.Runs.TinyModel.Create(task, 3L)
             m.AttachLora(LoraSettings(4, 8.0, all7), 5L)
             randomise m 17L
             PeftAdapter.Save(m, start, "tiny"))
            let spec (out: string) (extra: (string * string) list) =
                let pairs =
                    [ "task", "countdown"; "method", "simko"; "steps", "3"; "prompts_per_step", "4"; "samples_per_prompt", "4"; "max_new_tokens", "10"
                      "mini_batches", "1"; "micro_batch_size", "16"; "lr", "1e-2"; "seed", "3"; "adapter", start
                      "checkpoint_every", "100"; "keep_checkpoints", "1"; "tensorboard", "false"; "out", out ]
                match SimKO.Cli.TrainConfig.resolvePairs (pairs @ extra) with
                | Ok s -> s
                | Error e -> failtestf "spec: %A" e
            let outA = Path.Combine(root, "in-process")
            (use runA = SimKO.Host.Runs.RunFactory.Build(spec outA [], NullLogger.Instance)
             runA.Trainer.Run(false) |> ignore)
            let serve (baseSeed: int64) (f: SimKO.Host.Serving.SimkoServer -> unit) =
                // the server holds the base the trainer starts from (the tiny model of the run's seed); syncs send adapters only
                use s = SimKO.Host.Runs.TinyModel.Create(task, baseSeed)
                s.eval() |> ignore
                let server =
                    SimKO.Host.Serving.SimkoServer.StartAsync(s, task.Tokenizer, SimKO.Host.Serving.ChatMarkup.FromTemplate(null, task.Tokenizer), "countdown",
                                                              SimKO.Host.Serving.ServeOptions(Host = "127.0.0.1", Port = 0, MaxBatch = 16), NullLogger.Instance).GetAwaiter().GetResult()
                try f server
                finally server.DisposeAsync().AsTask().GetAwaiter().GetResult()
            let outB = Path.Combine(root, "served")
            serve 3L <| fun server ->
                use runB = SimKO.Host.Runs.RunFactory.Build(spec outB [ "rollout_url", server.Url; "rollout_server", "simko"; "rollout_concurrency", "4" ], NullLogger.Instance)
                runB.Trainer.Run(false) |> ignore
                Expect.equal server.Engine.WeightsVersion 4L "the server attached an adapter before step 0 and after each step"
                let client = runB.Parts.Rollout :?> SimKO.Host.Rollout.ServerRolloutClient
                Expect.stringContains client.Adapter "-v3" "requests select the last adapter"
                let probe = SimKO.Host.Runs.ServerRollout.ProbeSequence runB.Parts
                let served = client.ServerLogProbs probe
                let trainer = SequenceScores.LogProbs(runB.Parts.Policy, probe)
                for a, b in Array.zip served trainer do Expect.isLessThan (abs (a - b)) 1e-4f "served log-probs equal the trainer's policy's after the run"
                client.UseAdapter null
                let baseLps = client.ServerLogProbs probe
                Expect.isGreaterThan (Array.map2 (fun (a: float32) b -> abs (a - b)) baseLps trainer |> Array.max) 1e-2f "the adapter differs from the base (else the comparison above could not fail)"
                let last = Path.Combine(outB, SimKO.Host.Rollout.RolloutWeightSync.Folder, "3")
                Expect.isTrue (File.Exists(Path.Combine(last, PeftAdapter.Weights))) "the last sync wrote a PEFT adapter"
                Expect.isFalse (File.Exists(Path.Combine(last, HfFolder.Weights))) "and no full weights"
            let ma, mb = Checks.metricsOf outA, Checks.metricsOf outB
            Expect.equal mb.Length 3 "three steps"
            Expect.equal [ for m in mb -> m.["rollout_weights_version"].GetValue<float>() ] [ 1.0; 2.0; 3.0 ] "the version rises every step"
            Checks.expectSameMetrics ma mb
            // negative control: a server whose base is not the trainer's fails the probe on the first adapter
            serve 99L <| fun server ->
                use runC = SimKO.Host.Runs.RunFactory.Build(spec (Path.Combine(root, "other-base")) [ "rollout_url", server.Url; "rollout_server", "simko" ], NullLogger.Instance)
                Expect.throwsT<SimKO.Host.Rollout.StaleWeightsException> (fun () -> runC.Trainer.Run(false) |> ignore) "the probe on the adapter sees another base"
            Directory.Delete(root, true)
    ]
