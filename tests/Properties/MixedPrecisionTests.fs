/// Issue 12, the trainer at model scale: fp32 master weights, moments and gradient sums whatever the
/// compute dtype (an lr-1e-6 update survives in bf16), optimizer offload equal to the plain update,
/// micro-batches by token budget with the gradient independent of the split, the fused LM head in
/// the update, and a 3-step bf16 training run whose fp32 checkpoint moved nearly every weight.
module SimKO.Tests.MixedPrecisionTests

open System.IO
open Expecto
open TorchSharp
open Microsoft.Extensions.Logging.Abstractions
open SimKO.Math
open SimKO.Host.Batches
open SimKO.Host.Model
open SimKO.Host.Training
open SimKO.Host.Checkpoints
open SimKO.Tests.Checks

let private named (m: CausalLM) =
    m.NamedParameters() |> Seq.map (fun struct (n, p) -> struct (n, p :> torch.Tensor)) |> Array.ofSeq

let private tinyModel (seed: int64) =
    let m = new CausalLM(ModelConfig("qwen2", 20, 32, 64, 2, 4, 2, 1e-6, 10000.0, false, true, 64))
    m.InitWeights(seed)
    m

/// Updates of two accumulated micro-batches of a next-token loss on fixed random data, clipped and
/// applied: the clip norms.
let adamSteps (m: CausalLM) (opt: AdamW) (steps: int) (clip: float) =
    [ for s in 1 .. steps do
        opt.ZeroGrad()
        for micro in 0 .. 1 do
            use _ = torch.NewDisposeScope()
            let gen = new torch.Generator(uint64 (100 * s + micro))
            let ids = torch.randint(20L, [| 3L; 6L |], generator = gen)
            let mask = torch.ones_like(ids)
            let logits = m.Forward(ids, mask, CausalLM.PositionsFromMask mask)
            torch.nn.functional.cross_entropy(logits.reshape(-1L, 20L), ids.roll(-1L, 1L).reshape(-1L)).backward()
            opt.AccumulateGradients()
        let norm = opt.ClipGradients(clip)
        opt.Step(1e-2)
        norm ]

let private samples () =
    let rng = System.Random(9)
    [| for g in 0 .. 3 do
         let prompt = Array.init (1 + rng.Next(6)) (fun _ -> rng.Next(1, 19))
         for _ in 0 .. 3 ->
             Sample(g, prompt, Array.init (1 + rng.Next(9)) (fun _ -> rng.Next(1, 19)), float (rng.Next(2))) |]

/// One PolicyUpdate.Run on a fresh tiny model: the metrics and each parameter's change. AdamW with
/// ε = 1 and lr = 1 makes the change −g/(|g| + 1), a monotone function of the gradient g (with the
/// usual ε, Adam turns a zero gradient's rounding noise — k_proj.bias has none mathematically — into
/// full-size steps, which no comparison of two summation orders survives).
let private update (settings: UpdateSettings) =
    use m = tinyModel 4L
    let before = [ for struct (n, p) in m.NamedParameters() -> p.detach().clone() ]
    let policy = ModelPolicy(m) :> IPolicy
    let opt = AdamW(named m, 0.9, 0.99, 1.0, 0.0)
    let s = samples ()
    use batch = PackedBatch.Pack(s, 0, torch.CPU)
    let objective = Methods.objective (Methods.make Methods.simko { Methods.simkoDefaults with Alpha = 0.1; Q = 0.5 })
    let adv = Advantages.compute objective.Advantage 4 (torch.tensor(s |> Array.map (fun x -> x.Reward), dtype = System.Nullable torch.ScalarType.Float32))
    let metrics = PolicyUpdate.Run(objective, policy, opt, 1.0, batch, adv, 4, UpdateSettings(settings.MiniBatches, settings.MicroBatchSize, settings.PpoEpochs, 1e9, settings.MaxTokensPerMicroBatch, settings.LogitsChunkTokens))
    metrics, [ for struct (n, p), p0 in Seq.zip (m.NamedParameters()) before -> n, (p.detach() - p0).DetachFromDisposeScope() ]

let private sameParameters what (a: (string * torch.Tensor) list) (b: (string * torch.Tensor) list) =
    for (n, x), (_, y) in List.zip a b do
        let scale = max 1e-6 (x.abs().max().item<float32>() |> float)
        allClose (sprintf "%s: %s" what n) (1e-4 * scale) 1e-3 (toArray x) (toArray y)

let tests =
    testSequenced <| testList "mixed precision and micro-batching" [
        testCase "optimizer offload equals the plain update on the CPU" <| fun () ->
            use _ = torch.NewDisposeScope()
            for clip in [ 1e9; 0.05 ] do                        // without and with clipping
                use plain = tinyModel 3L
                use offloaded = tinyModel 3L
                // ε = 1 (see `update` below): k_proj.bias has no gradient mathematically, and with
                // ε = 1e-8 AdamW turns each path's rounding noise there into full-size steps that
                // depend on the CPU's summation order (issue 19.1: failed on AMD EPYC).
                let a = AdamW(named plain, 0.9, 0.99, 1.0, 0.01)
                let b = AdamW(named offloaded, 0.9, 0.99, 1.0, 0.01, offload = true)
                Expect.isTrue b.HasMasters "offload keeps host masters"
                adamSteps plain a 3 clip |> ignore
                adamSteps offloaded b 3 clip |> ignore
                for struct (n, p), struct (_, q) in Seq.zip (plain.NamedParameters()) (offloaded.NamedParameters()) do
                    allClose (sprintf "%s (clip %g)" n clip) 1e-7 1e-5 (toArray p) (toArray q)
                    Expect.isTrue (b.MasterWeights().[n].Equals(q)) "the parameters are the masters' copy"
        testCase "bf16 compute keeps fp32 masters: lr-1e-6 updates survive where bf16 weights alone would not" <| fun () ->
            use _ = torch.NewDisposeScope()
            let gen = new torch.Generator(1UL)
            let w0 = torch.randn([| 64L; 64L |], generator = gen) * 0.02
            let p = new TorchSharp.Modules.Parameter(w0.to_type(torch.ScalarType.BFloat16))
            let opt = AdamW([| struct ("w", p :> torch.Tensor) |], 0.9, 0.999, 1e-8, 0.0)
            let start = opt.MasterWeights().["w"].clone()
            for _ in 1 .. 10 do
                opt.ZeroGrad()
                p.grad <- torch.randn([| 64L; 64L |], generator = gen).to_type(torch.ScalarType.BFloat16)
                opt.AccumulateGradients()
                opt.Step(1e-6)
            let master = opt.MasterWeights().["w"]
            Expect.equal master.dtype torch.ScalarType.Float32 "fp32 master"
            let moved = (master - start).ne(torch.tensor(0.0f)).to_type(torch.ScalarType.Float32).mean().item<float32>()
            Expect.isGreaterThan moved 0.99f "nearly every master weight moved"
            Expect.isTrue (p.Equals(master.to_type(torch.ScalarType.BFloat16))) "the bf16 weights are the masters rounded"
            // negative control: the same ten updates applied to the bf16 weights themselves round away
            let bf = w0.to_type(torch.ScalarType.BFloat16)
            let movedBf = (bf + 1e-5).ne(bf).to_type(torch.ScalarType.Float32).mean().item<float32>()
            Expect.isLessThan movedBf 0.2f "in bf16, a 1e-5 step changes few weights"
        testCase "micro-batches by token budget give the gradient of fixed rows (any budget), with less padding" <| fun () ->
            use _ = torch.NewDisposeScope()
            let rowsMetrics, rows = update (UpdateSettings(2, 3, 1, 1.0))
            for budget in [ 12; 30; 1000 ] do
                let m, budgeted = update (UpdateSettings(2, 3, 1, 1.0, MaxTokensPerMicroBatch = budget))
                sameParameters (sprintf "budget %d" budget) rows budgeted
                Expect.isLessThan m.Values.["padding_fraction"] rowsMetrics.Values.["padding_fraction"] (sprintf "budget %d trims padding" budget)
                Expect.equal m.RealTokens rowsMetrics.RealTokens "same real tokens"
        testCase "token-budget micro-batches hold whole rows within the budget, longest first" <| fun () ->
            let lengths = [| struct (3, 2); struct (1, 1); struct (5, 4); struct (2, 2); struct (9, 9) |]
            let split = MicroBatches.Split([| 0; 1; 2; 3; 4 |], lengths, 64, 12)
            Expect.equal (split |> List.ofSeq |> List.map List.ofArray) [ [ 4 ]; [ 2 ]; [ 0; 3 ]; [ 1 ] ] "micro-batches"
            for mb in split do
                let p = mb |> Array.map (fun i -> let struct (x, _) = lengths[i] in x) |> Array.max
                let r = mb |> Array.map (fun i -> let struct (_, y) = lengths[i] in y) |> Array.max
                Expect.isTrue (mb.Length = 1 || mb.Length * (p + r) <= 12) "within the budget (or one row)"
        testCase "the update through the fused chunked LM head equals the update through whole logits" <| fun () ->
            use _ = torch.NewDisposeScope()
            let _, whole = update (UpdateSettings(2, 4, 1, 1.0))
            let _, fused = update (UpdateSettings(2, 4, 1, 1.0, LogitsChunkTokens = 5))
            sameParameters "fused head" whole fused
        testCase "a 3-step bf16 run on the CPU leaves fp32 checkpoints in which nearly all weights moved, and an fp32 export of the masters" <| fun () ->
            use _ = torch.NewDisposeScope()
            let out = Path.Combine(Path.GetTempPath(), sprintf "simko-bf16-run-%d" System.Environment.ProcessId)
            if Directory.Exists out then Directory.Delete(out, true)
            let spec =
                { SimKO.Cli.TrainConfig.defaults with
                    Steps = 3; PromptsPerStep = 2; SamplesPerPrompt = 4; MaxNewTokens = 8; MicroBatchSize = 4
                    Optimizer = { SimKO.Cli.TrainConfig.defaults.Optimizer with LearningRate = 1e-6 }
                    DType = SimKO.Cli.RunSpec.BFloat16; ExportDType = SimKO.Cli.RunSpec.Float32
                    Memory = { GradientCheckpointing = true; LogitsChunkTokens = 8; MaxTokensPerMicroBatch = 64; OptimizerOffload = false }
                    Out = out; CheckpointEvery = 3; Tensorboard = false }
            use run = SimKO.Host.Runs.RunFactory.Build(spec, NullLogger.Instance)
            Expect.equal (run.Model.NamedParameters() |> Seq.head |> fun struct (_, p) -> p.dtype) torch.ScalarType.BFloat16 "bf16 compute"
            use init = SimKO.Host.Runs.TinyModel.Create(run.Task, int64 spec.Seed)
            run.Trainer.Run(false) |> ignore
            let ckpt = Directory.GetDirectories(Path.Combine(out, "checkpoints")) |> Array.max
            let weights = SafeTensors.Read(Path.Combine(ckpt, SimKO.Host.Training.Trainer.ModelFile))
            let mutable moved, total = 0L, 0L
            for struct (n, p0) in init.NamedParameters() do
                let w = weights.[n]
                Expect.equal w.dtype torch.ScalarType.Float32 (sprintf "%s is float32 in the checkpoint" n)
                moved <- moved + w.ne(p0).sum().item<int64>()
                total <- total + p0.numel()
            Expect.isGreaterThan (float moved / float total) 0.9 (sprintf "moved %d of %d weights at lr 1e-6" moved total)
            let cfg = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(out, "final", "config.json")))
            Expect.equal (cfg.["torch_dtype"].GetValue<string>()) "float32" "the export says float32 (export_dtype)"
            let exported = SafeTensors.Read(Path.Combine(out, "final", HfFolder.Weights))
            for kv in exported do
                Expect.isTrue (kv.Value.Equals(weights.[kv.Key])) (sprintf "%s: the float32 export is the fp32 master, not its bf16 rounding" kv.Key)
    ]
