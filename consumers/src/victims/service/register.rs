//! The victim register: every victim's latest preferences from `bl.victim.v1` (compacted), read
//! in full on start and followed while running, so a case event is decided on what the victim
//! last said (an opt-out, a new channel, Enhanced Rights).

use std::{collections::HashMap, sync::atomic::AtomicBool};

use bluelight_avro::{Codec, records::VictimEvent};
use rdkafka::{Message, message::BorrowedMessage};

use crate::{
    Result,
    eos::{EosConfig, Follower},
    victims::Preferences,
};

pub(crate) const VICTIM_TOPIC: &str = "bl.victim.v1";

pub(crate) struct Register {
    follower: Follower,
    victims: HashMap<String, Preferences>,
}

impl Register {
    /// Reads `bl.victim.v1` to its end.
    pub(crate) fn start(
        cfg: &EosConfig,
        codec: &Codec,
        rt: &tokio::runtime::Handle,
        stop: &AtomicBool,
    ) -> Result<Self> {
        let mut c = cfg.base()?;
        c.set("group.id", format!("{}-register-reader", cfg.group));
        let mut victims = HashMap::new();
        let follower = Follower::start(c, VICTIM_TOPIC, cfg.timeout, stop, |m| {
            apply_one(&mut victims, codec, rt, m);
        })?;
        Ok(Register { follower, victims })
    }

    /// Applies what arrived since the last call.
    pub(crate) fn follow(&mut self, codec: &Codec, rt: &tokio::runtime::Handle) {
        let victims = &mut self.victims;
        self.follower.apply(|m| apply_one(victims, codec, rt, m));
    }

    pub(crate) fn get(&self, victim_ref: &str) -> Option<Preferences> {
        self.victims.get(victim_ref).cloned()
    }

    pub(crate) fn len(&self) -> usize {
        self.victims.len()
    }
}

fn apply_one(
    victims: &mut HashMap<String, Preferences>,
    codec: &Codec,
    rt: &tokio::runtime::Handle,
    m: &BorrowedMessage<'_>,
) {
    let Some(payload) = m.payload() else {
        if let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) {
            victims.remove(key);
        }
        return;
    };
    match rt.block_on(codec.decode::<VictimEvent>(payload)) {
        Ok(v) => {
            victims.insert(
                v.victim_ref.clone(),
                Preferences {
                    enhanced_rights: v.enhanced_rights,
                    opted_out: v.contact.opted_out,
                    channel: v.contact.channel,
                },
            );
        }
        // The projector dead-letters what no one can read; here it is only skipped.
        Err(e) => {
            tracing::warn!(error = %e, partition = m.partition(), offset = m.offset(), "unreadable victim record skipped")
        }
    }
}
