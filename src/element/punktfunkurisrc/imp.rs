//! `punktfunkurisrc` implementation: the inner `punktfunksrc`, its news turned into ghost pads
//! and `no-more-pads`, the URI passed through.

use std::sync::{LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use crate::element::caps::{AUDIO_PAD, audio_caps, stream_caps};
use crate::element::punktfunksrc::{PunktfunkSrc, StreamsNews, URI_SCHEME};
use crate::element::{debug_category, lock};

static CAT: LazyLock<gst::DebugCategory> =
    LazyLock::new(|| debug_category("punktfunkurisrc", "punktfunk URI source"));

/// Name of the bin's video pad (the inner src's is `src`).
const VIDEO_PAD: &str = "video";

/// The ghost pads shown and whether the streams are decided.
#[derive(Default)]
struct Pads {
    video: Option<gst::GhostPad>,
    audio: Option<gst::GhostPad>,
    /// `no-more-pads` went out: an `audio` pad of the inner src after this is the stand-in for
    /// a host without audio (or audio too late to be played here).
    decided: bool,
}

pub(crate) struct PunktfunkUriSrc {
    src: PunktfunkSrc,
    pads: Mutex<Pads>,
}

impl Default for PunktfunkUriSrc {
    fn default() -> Self {
        PunktfunkUriSrc {
            src: glib::Object::builder().property("name", "src").build(),
            pads: Mutex::new(Pads::default()),
        }
    }
}

impl PunktfunkUriSrc {
    /// A ghost pad `name` for the inner src's pad `target`, active and added to the bin.
    fn expose(&self, name: &str, target: &gst::Pad) -> Option<gst::GhostPad> {
        let obj = self.obj();
        let templ = obj.pad_template(name)?;
        let ghost = gst::GhostPad::builder_from_template_with_target(&templ, target)
            .ok()?
            .name(name)
            .build();
        if ghost.set_active(true).is_err() {
            gst::warning!(CAT, imp = self, "could not activate the {name} pad");
        }
        Some(ghost)
    }

    fn add(&self, ghost: &gst::GhostPad) {
        gst::info!(CAT, imp = self, "pad {} added", ghost.name());
        if self.obj().add_pad(ghost).is_err() {
            gst::element_imp_error!(
                self,
                gst::CoreError::Pad,
                ("Could not add the {} pad", ghost.name())
            );
        }
    }

    fn on_news(&self, news: StreamsNews) {
        match news {
            StreamsNews::Video => {
                // Before the first buffer: the inner src must never push into an unlinked pad.
                // A video announced after the decision still gets its pad (late, but not an
                // error).
                let ghost = {
                    let mut pads = lock(&self.pads);
                    if pads.video.is_some() {
                        return;
                    }
                    let Some(target) = self.src.static_pad("src") else {
                        return;
                    };
                    pads.video = self.expose(VIDEO_PAD, &target);
                    pads.video.clone()
                };
                if let Some(g) = ghost {
                    self.add(&g);
                }
            }
            StreamsNews::Decided(d) => {
                gst::info!(CAT, imp = self, "the host sends {d:?}: no more pads");
                lock(&self.pads).decided = true;
                self.obj().no_more_pads();
            }
        }
    }

    fn on_src_pad_added(&self, pad: &gst::Pad) {
        if pad.name() != AUDIO_PAD {
            return;
        }
        let ghost = {
            let mut pads = lock(&self.pads);
            if pads.decided || pads.audio.is_some() {
                gst::debug!(
                    CAT,
                    imp = self,
                    "inner audio pad after the decision: not shown"
                );
                return;
            }
            pads.audio = self.expose(AUDIO_PAD, pad);
            pads.audio.clone()
        };
        if let Some(g) = ghost {
            self.add(&g);
        }
    }

    /// Back to no pads (stopped): the next start shows the streams afresh.
    fn remove_pads(&self) {
        let pads = std::mem::take(&mut *lock(&self.pads));
        let obj = self.obj();
        for ghost in [pads.video, pads.audio].into_iter().flatten() {
            let _ = ghost.set_active(false);
            let _ = obj.remove_pad(&ghost);
        }
    }
}

#[glib::object_subclass]
impl ObjectSubclass for PunktfunkUriSrc {
    const NAME: &'static str = "GstPunktfunkUriSrc";
    type Type = super::PunktfunkUriSrc;
    type ParentType = gst::Bin;
    type Interfaces = (gst::URIHandler,);
}

impl ObjectImpl for PunktfunkUriSrc {
    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.set_element_flags(gst::ElementFlags::SOURCE);
        obj.set_suppressed_flags(gst::ElementFlags::SOURCE | gst::ElementFlags::SINK);
        if obj.add(&self.src).is_err() {
            gst::error!(CAT, imp = self, "could not add the inner punktfunksrc");
        }
        let weak = obj.downgrade();
        self.src.set_streams_hook(move |news| {
            if let Some(bin) = weak.upgrade() {
                bin.imp().on_news(news);
            }
        });
        let weak = obj.downgrade();
        self.src.connect_pad_added(move |_, pad| {
            if let Some(bin) = weak.upgrade() {
                bin.imp().on_src_pad_added(pad);
            }
        });
    }
}

impl GstObjectImpl for PunktfunkUriSrc {}

impl ElementImpl for PunktfunkUriSrc {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "punktfunk URI source",
                "Source/Network",
                "Plays punktfunk://[passphrase@]host:port: a punktfunksrc (child 'src') whose video and audio appear as sometimes pads, for playbin and gst-play-1.0",
                "punktfunk developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            // The templates are static and well-formed; failing here is a programming error.
            let pad = |name, caps: &gst::Caps| {
                gst::PadTemplate::new(
                    name,
                    gst::PadDirection::Src,
                    gst::PadPresence::Sometimes,
                    caps,
                )
                .expect("static pad template")
            };
            vec![
                pad(VIDEO_PAD, &stream_caps()),
                pad(AUDIO_PAD, &audio_caps()),
            ]
        });
        TEMPLATES.as_ref()
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        let ret = self.parent_change_state(transition)?;
        if transition == gst::StateChange::PausedToReady {
            self.remove_pads();
        }
        Ok(ret)
    }
}

impl BinImpl for PunktfunkUriSrc {}

impl URIHandlerImpl for PunktfunkUriSrc {
    const URI_TYPE: gst::URIType = gst::URIType::Src;

    fn protocols() -> &'static [&'static str] {
        &[URI_SCHEME]
    }

    fn uri(&self) -> Option<String> {
        self.src.uri().map(String::from)
    }

    fn set_uri(&self, uri: &str) -> Result<(), glib::Error> {
        self.src.set_uri(uri)
    }
}
