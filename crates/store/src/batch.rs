//! What both backends decide alike about a batch insert's idempotency keys, before and after
//! they touch the database: which item is the first use of each key, and what each item answers.

use std::collections::HashMap;

use crate::{Inserted, NewTree, Result, StoreError, MAX_BATCH};

/// The keys of one batch insert.
pub(crate) struct KeyPlan {
    /// The items that use a key first in the batch, in order.
    pub(crate) first_uses: Vec<usize>,
    first_use: HashMap<(String, String), usize>,
    /// For an item whose key an earlier item of the batch used: that item.
    repeats: Vec<Option<usize>>,
}

impl KeyPlan {
    /// Fails with `KeyConflict` for an item reusing an earlier item's key with another request,
    /// and refuses a batch over [`MAX_BATCH`] or holding none.
    pub(crate) fn new(trees: &[NewTree]) -> Result<Self> {
        if trees.is_empty() || trees.len() > MAX_BATCH {
            return Err(StoreError::BatchSize { len: trees.len(), max: MAX_BATCH });
        }
        let mut plan = KeyPlan { first_uses: Vec::new(), first_use: HashMap::new(), repeats: vec![None; trees.len()] };
        for (index, tree) in trees.iter().enumerate() {
            let Some(key) = &tree.idempotency else { continue };
            let name = (key.project_id.to_string(), key.client_token.clone());
            match plan.first_use.get(&name) {
                Some(&first) => {
                    let first_key = trees[first].idempotency.as_ref().expect("a first use has a key");
                    if first_key.request_hash != key.request_hash {
                        return Err(StoreError::KeyConflict { index });
                    }
                    plan.repeats[index] = Some(first);
                }
                None => {
                    plan.first_use.insert(name, index);
                    plan.first_uses.push(index);
                }
            }
        }
        Ok(plan)
    }

    /// The item that uses this key first.
    pub(crate) fn first_use_of(&self, project_id: &str, client_token: &str) -> Option<usize> {
        self.first_use.get(&(project_id.to_owned(), client_token.to_owned())).copied()
    }

    /// Whether item `index` is a new job to insert, given what the stored keys answered so far.
    pub(crate) fn creates(&self, index: usize, answers: &[Option<Inserted>]) -> bool {
        answers[index].is_none() && self.repeats[index].is_none()
    }

    /// Every item's answer: what the stored keys said, the first use's job for a repeat, or
    /// `Created`.
    pub(crate) fn finish(&self, trees: &[NewTree], answers: Vec<Option<Inserted>>) -> Vec<Inserted> {
        let settled: Vec<Inserted> = answers.into_iter().map(|a| a.unwrap_or(Inserted::Created)).collect();
        (0..trees.len())
            .map(|index| match self.repeats[index] {
                None => settled[index].clone(),
                Some(first) => match &settled[first] {
                    Inserted::Existing(job) => Inserted::Existing(job.clone()),
                    _ => Inserted::Existing(Box::new(trees[first].job.clone())),
                },
            })
            .collect()
    }
}
