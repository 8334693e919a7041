// attnkit: Stable-Diffusion-family models in Node.js with every attention layer open to change.

export * from './attention/index.js';
export { fsyncPath, removeStaleTemps, writeFileAtomic, writeFolderAtomic } from './io/atomic.js';
export { readPng, writeGrayPng, writePng } from './io/png.js';
// used by the Shapes lab and by training
export { type Progress, progressBar } from './io/progress.js';
export { type ColorMapName, colorize, type GridOptions, imageGrid, overlayHeatMap } from './io/render.js';
export {
  type ReadSafetensorsOptions,
  readSafetensors,
  readSafetensorsHeader,
  type SafetensorsContents,
  type SafetensorsDType,
  type SafetensorsFloatFormat,
  type SafetensorsHeader,
  type SafetensorsTensorInfo,
  type SerializeSafetensorsOptions,
  writeSafetensors,
} from './io/safetensors.js';
export { setThreads } from './kernels/ort.js';
export {
  clearSubgraphCache,
  setSubgraphBudget,
  setSubgraphs,
  subgraphStats,
  subgraphsEnabled,
} from './kernels/subgraph.js';
export {
  AttendAndExcite,
  type AttendAndExciteOptions,
  attendAndExciteLoss,
  type ExciteLoss,
  type ExciteObjective,
  gaussianSmoothingMatrix,
  nounSubjects,
} from './methods/application/attend-and-excite.js';
// methods, by level
export {
  AttentionCaching,
  type AttentionCachingOptions,
  type CacheMethod,
} from './methods/application/attention-caching.js';
export type { AttentionMaskOptions } from './methods/application/attention-mask.js';
export { attentionMask } from './methods/application/attention-mask.js';
export { BlockCaching, type BlockCachingOptions } from './methods/application/block-caching.js';
export { BoxDiff, type BoxDiffOptions, boxDiffLoss } from './methods/application/box-diff.js';
export {
  LayoutGuidance,
  type LayoutGuidanceOptions,
  layoutLoss,
} from './methods/application/layout-guidance.js';
export { LOCAL_BLEND_TH, LocalBlend, type LocalBlendOptions } from './methods/application/local-blend.js';
export { groupControllers, type PromptGroup } from './methods/application/prompt-groups.js';
export * from './methods/application/score-guidance.js';
export { TokenMerging, type TokenMergingOptions } from './methods/application/token-merging.js';
export {
  CrossFrameAttention,
  type FrameSource,
  firstFrameRows,
  latentFrames,
  MotionDynamics,
  type MotionDynamicsOptions,
  motionWarpStep,
  T2V_ZERO_MOTION,
  T2V_ZERO_T0,
  translateFrames,
  WARP_SAMPLINGS,
  type WarpSampling,
} from './methods/feature/cross-frame-attention.js';
export {
  MASACTRL_START_STEP,
  MutualSelfAttention,
  MutualSelfAttentionMaskAuto,
  type MutualSelfAttentionMaskOptions,
  type MutualSelfAttentionOptions,
} from './methods/feature/mutual-self-attention.js';
export { PlugAndPlay, type PlugAndPlayOptions } from './methods/feature/plug-and-play.js';
export * from './methods/function/index.js';
export { AttentionEdit, type AttentionEditOptions } from './methods/map/attention-edit.js';
export { AttentionRefine } from './methods/map/attention-refine.js';
export { AttentionReplace } from './methods/map/attention-replace.js';
export { AttentionReweight, type AttentionReweightOptions } from './methods/map/attention-reweight.js';
export {
  AttentionStore,
  type AttentionStoreOptions,
  framePairMap,
  type StoredMap,
  type StoredTemporalMap,
  type StoreKey,
  temporalHeatMap,
} from './methods/map/attention-store.js';
export {
  aggregateCrossAttention,
  type ExpandOptions,
  expandAs,
  GlobalHeatMap,
  type GlobalHeatMapOptions,
} from './methods/map/heatmap.js';
export {
  boxRegion,
  type CompositionPart,
  complementRegion,
  fullRegion,
  MapComposition,
  type MapCompositionOptions,
  type MapSource,
  poolRegion,
  rowSource,
  type TokenRegion,
} from './methods/map/map-composition.js';
export {
  boxMask,
  cellMeans,
  type PaintedWord,
  PaintWithWords,
  type PaintWithWordsOptions,
  type RegionMask,
} from './methods/map/paint-with-words.js';
export {
  OBJECT_MASK_THRESHOLD,
  PROMPT_MIX_STEPS,
  PromptMixing,
  type PromptMixingOptions,
  proxyPrompts,
  SHAPE_LOCALIZATION_STEPS,
  shapeLocalization,
} from './methods/map/prompt-mixing.js';
export {
  TF_ICON_BACKGROUND_STEPS,
  TF_ICON_TAU_A,
  TF_ICON_TAU_B,
  type TFIconOptions,
  tfIconAttention,
} from './methods/map/tf-icon.js';
export type { CrossReplaceSteps, StepBounds } from './methods/map/token-alignment.js';
export { type GroundedWord, type GroundingLoss, TokenGrounding } from './methods/map/token-grounding.js';
export type { ResizeMode } from './methods/map/upsample.js';
export { VideoP2P } from './methods/map/video-p2p.js';
export {
  type CustomDiffusionLayer,
  type CustomDiffusionWeights,
  customDiffusionController,
  customDiffusionFromTensors,
  readCustomDiffusion,
  writeCustomDiffusion,
} from './methods/weight/custom-diffusion.js';
export {
  checkLoraDelta,
  isAttentionProjection,
  type LoraAdapter,
  type LoraDelta,
  type LoraUse,
  loraController,
  loraDeltaWeight,
  loraRank,
} from './methods/weight/lora.js';
export {
  type LoraTargets,
  type MergedLora,
  mergeLora,
  mergeLoraAdapters,
} from './methods/weight/lora-merge.js';
export {
  type BoundToken,
  bindModifierToken,
  readModifierTokens,
  singleTokenId,
  type WordEncoder,
  writeModifierTokens,
} from './methods/weight/modifier-token.js';
export type { LatentDistribution } from './models/autoencoder-kl.js';
export { AutoencoderKL } from './models/autoencoder-kl.js';
export {
  type CLIPTextForwardOptions,
  CLIPTextModel,
  type CLIPTextOutput,
  type PromptTokenizer,
} from './models/clip-text.js';
export {
  type CLIPTextActivation,
  type CLIPTextConfig,
  parseCLIPTextConfig,
} from './models/clip-text-config.js';
export {
  CLIPTextModelWithProjection,
  type CLIPTextWithProjectionOutput,
} from './models/clip-text-projection.js';
export {
  bytesToUnicode,
  CLIPTokenizer,
  type CLIPTokenizerInit,
  type TokenizeOptions,
  type TokenizerOutput,
} from './models/clip-tokenizer.js';
export { type JsonConfig, readConfig } from './models/config.js';
export {
  ldmCLIPMapKey,
  ldmUNetMapKey,
  ldmVAEMapKey,
  type MapKey,
  openCLIPMapKey,
} from './models/ldm-keys.js';
export { type LoraReadTargets, loraFromTensors, readLora } from './models/lora-file.js';
export type { LoraLayout, LoraPart } from './models/lora-keys.js';
export {
  AnimateDiffTransformer3D,
  MotionAdapter,
  type MotionAdapterConfig,
  MotionModules,
  parseMotionAdapterConfig,
  sinusoidalPositions,
  TemporalTransformerBlock,
} from './models/motion-module.js';
export { type FromPretrainedOptions, readPretrainedWeights } from './models/pretrained.js';
export {
  AdaLayerNormContinuous,
  AdaLayerNormZero,
  CombinedTimestepTextProjEmbeddings,
  GeluFeedForward,
  GeluFeedForwardNet,
  GeluProj,
  JointAttention,
  JointTransformerBlock,
  PatchEmbed,
  sinCosPositions,
  TextProjection,
} from './models/sd3-blocks.js';
export {
  parseSD3TransformerConfig,
  SD3Transformer2DModel,
  type SD3TransformerConfig,
} from './models/sd3-transformer.js';
export {
  type AddedConditions,
  UNet2DConditionModel,
  type UNetForwardOptions,
} from './models/unet2d-condition.js';
export {
  type DownBlockType,
  parseUNetConfig,
  type TextTimeConfig,
  type UNetConfig,
  type UpBlockType,
} from './models/unet2d-config.js';
export { parseVAEConfig, type VAEConfig } from './models/vae-config.js';
export * from './nn/index.js';
export { BUILTIN_MODEL } from './pipelines/builtin-model.js';
export {
  type ComposeOptions,
  type ComposeResult,
  composeImage,
  exceptionalPromptEmbeds,
  type PixelBox,
  placeObject,
} from './pipelines/compose.js';
// editing, inversion, heat-maps
export {
  type EditPromptOptions,
  type EditPromptResult,
  editPrompt,
  type PromptEditMethod,
} from './pipelines/edit.js';
export {
  type ExportShape,
  exportTextEncoder,
  exportUNet,
  exportVAEDecoder,
  exportVAEEncoder,
  type TextExportOptions,
} from './pipelines/export.js';
export {
  defaultMaskResolution,
  defaultPnPLayers,
  defaultStartLayer,
  editFeatures,
  type FeatureEditMethod,
  type FeatureEditOptions,
  type FeatureEditResult,
  maskAutoFor,
} from './pipelines/feature-edit.js';
export {
  defaultHeatResolutions,
  generateWithHeatMaps,
  HEAT_MAP_THRESHOLD,
  type HeatMapRun,
  type HeatMapRunOptions,
  heatStepRange,
  type ImageHeatMapOptions,
  imageHeatMaps,
} from './pipelines/heatmaps.js';
export {
  type DDIMInversion,
  type DDIMInversionOptions,
  ddimInvert,
  followTrajectory,
  inversionStepRange,
  invertBatch,
  type NullTextInversion,
  type NullTextOptions,
  nullTextInversion,
  nullTextInversionBatch,
  type TextConditioning,
} from './pipelines/inversion.js';
export {
  type FlowInversion,
  type FlowSampling,
  invertFlow,
  isSD3Folder,
  SD3_PIPELINE,
  type SD3GenerateOptions,
  StableDiffusion3,
  sampleFlow,
} from './pipelines/sd3.js';
export {
  encodeSDXLPrompt,
  type MicroConditioning,
  type SDXLParts,
  type SDXLText,
  sdxlAddedConditions,
} from './pipelines/sdxl.js';
export {
  BACKGROUND_BLEND_STEP,
  type ShapeVariationsOptions,
  type ShapeVariationsResult,
  shapeVariations,
} from './pipelines/shape-variations.js';
export {
  readSingleFile,
  type SingleFileConfigOverrides,
  type SingleFileConfigs,
  type SingleFileFamily,
  type SingleFileOptions,
  singleFileConfigs,
  singleFileParts,
} from './pipelines/single-file.js';
export {
  type EditedPair,
  type GenerateOptions,
  type GenerateResult,
  initialNoise,
  type SamplingOptions,
  StableDiffusion,
  type StableDiffusionParts,
  type StepEvent,
} from './pipelines/stable-diffusion.js';
export {
  editVideo,
  encodeGif,
  frameStrip,
  generateVideo,
  MAX_VIDEO_FRAMES,
  MOTION_DIRECTIONS,
  type MotionDirection,
  VIDEO_METHODS,
  type VideoEditOptions,
  type VideoEditResult,
  type VideoMethod,
  type VideoOptions,
  type VideoResult,
} from './pipelines/video.js';
export {
  type FlowMatchEulerConfig,
  FlowMatchEulerDiscreteScheduler,
  readFlowMatchEulerConfig,
} from './schedulers/flow-match-euler.js';
export * from './schedulers/index.js';
export { perRow } from './schedulers/scheduler.js';
export * from './tensor/index.js';
export { Generator, rand, randn } from './tensor/random.js';
